/**
 * The distribution of local test accuracy across devices (Wang et al. 2019 report aggregates only):
 * mean, median and 10th percentile, the share of devices whose personal model beats the global
 * one, the mean gain in points, and a plot of the per-device distribution (sorted accuracies).
 */

export interface DistributionStats {
  devices: number;
  mean: number;
  median: number;
  p10: number;
  /** Against the global model on the same devices: the share where personal is strictly more accurate. */
  betterShare: number;
  /** The share where personal is at least as accurate (ties included; ties count as not better in betterShare). */
  atLeastShare: number;
  /** Mean of personal - global accuracy, in accuracy units. */
  meanGain: number;
}

/** The p-quantile of sorted values (linear between closest ranks, R type 7, as the coordinator's summaries). */
export function quantile(sorted: readonly number[], p: number): number {
  const position = (sorted.length - 1) * p;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

export function distribution(personal: readonly number[], global: readonly number[]): DistributionStats {
  if (personal.length !== global.length || personal.length === 0) throw new Error('one personal and one global accuracy per device');
  const sorted = [...personal].sort((a, b) => a - b);
  const mean = personal.reduce((a, b) => a + b, 0) / personal.length;
  let better = 0;
  let atLeast = 0;
  let gain = 0;
  personal.forEach((value, i) => {
    if (value > global[i]!) better++;
    if (value >= global[i]!) atLeast++;
    gain += value - global[i]!;
  });
  return {
    devices: personal.length,
    mean,
    median: quantile(sorted, 0.5),
    p10: quantile(sorted, 0.1),
    betterShare: better / personal.length,
    atLeastShare: atLeast / personal.length,
    meanGain: gain / personal.length,
  };
}

export interface DistributionSeries {
  label: string;
  /** Per-device accuracies (any order). */
  values: readonly number[];
}

const COLORS = ['#555555', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

/** An SVG of each series' per-device accuracies sorted ascending (the worst-served devices on the left). */
export function distributionSvg(title: string, series: readonly DistributionSeries[]): string {
  const [width, height, left, right, top, bottom] = [640, 360, 50, 170, 30, 40];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const x = (i: number, n: number) => left + (n <= 1 ? 0 : (i / (n - 1)) * plotW);
  const y = (accuracy: number) => top + (1 - accuracy) * plotH;
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (a) =>
        `<line x1="${left}" x2="${left + plotW}" y1="${y(a)}" y2="${y(a)}" stroke="#ddd"/><text x="${left - 6}" y="${y(a) + 4}" text-anchor="end" font-size="11">${Math.round(a * 100)}%</text>`,
    )
    .join('');
  const lines = series
    .map((s, j) => {
      const sorted = [...s.values].sort((a, b) => a - b);
      const points = sorted.map((v, i) => `${x(i, sorted.length).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      const color = COLORS[j % COLORS.length]!;
      return (
        `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>` +
        `<text x="${left + plotW + 10}" y="${top + 16 + j * 18}" font-size="12" fill="${color}">${escapeXml(s.label)}</text>`
      );
    })
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="${left}" y="18" font-size="13">${escapeXml(title)}</text>${grid}${lines}` +
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle" font-size="11">devices, sorted by local test accuracy</text></svg>\n`
  );
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
