/** Simulation output: per-round JSON and CSV, and an SVG plot of test accuracy against rounds. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RoundRow {
  round: number;
  /** Round outcome as the coordinator recorded it. */
  status: string;
  /** Global version committed by the round (null when it did not commit). */
  version: number | null;
  /** Test accuracy of the global model after the round (10,000 MNIST test images). */
  accuracy: number;
  loss: number;
  /** Clients selected for the round. */
  clients: number;
  accepted: number;
  rejected: number;
  dropped: number;
  /** Example-weighted mean local training loss of the accepted updates. */
  trainLoss: number | null;
  /** Bytes of weight data the coordinator received in uploads. */
  bytes: number;
  /** Uploads that came from Byzantine clients (`--byzantine`). */
  poisoned: number;
  /** The round's adaptive L2 bound on updates (null: off), and the accepted updates it scaled down or whose example count was clamped. */
  updateBound: number | null;
  clipped: number;
  clamped: number;
  /** L2 norm of the change the round applied. */
  updateNorm: number | null;
  /** Wall-clock seconds of the round, start request to commit. */
  seconds: number;
  /** Coordinator phases (from the round's transitions): selection + configuration, reporting, commit. */
  selectionMs: number | null;
  reportingMs: number | null;
  commitMs: number | null;
  /** Coordinator time decoding and validating the accepted uploads, and folding + finishing the aggregate. */
  validationMs: number;
  aggregationMs: number;
  /** Means over the round's uploads of what the SDK measured (see RoundTimings). */
  clientDownloadMs: number | null;
  clientTrainingMs: number | null;
  clientEncodeMs: number | null;
  clientUploadMs: number | null;
  /** Seconds the simulator spent fetching and testing the committed version on the main thread. */
  evalSeconds: number;
  /** Seconds since the first round started (includes evaluations). */
  elapsed: number;
}

export interface SimulationSummary {
  config: Record<string, unknown>;
  initialAccuracy: number;
  initialLoss: number;
  rounds: RoundRow[];
  finalAccuracy: number;
  bestAccuracy: number;
  /** First round whose accuracy reached the target, if a target was given and reached. */
  roundsToTarget: number | null;
  /** True when the run was interrupted (SIGINT) before its last round. */
  stopped: boolean;
  totalSeconds: number;
  setupSeconds: number;
  /** SDK errors the virtual clients reported, by code (e.g. upload_rejected). */
  clientErrors: Record<string, number>;
  backend: string;
}

const CSV_COLUMNS: (keyof RoundRow)[] = [
  'round',
  'status',
  'version',
  'accuracy',
  'loss',
  'clients',
  'accepted',
  'rejected',
  'dropped',
  'poisoned',
  'updateBound',
  'clipped',
  'clamped',
  'updateNorm',
  'trainLoss',
  'bytes',
  'seconds',
  'evalSeconds',
  'elapsed',
  'selectionMs',
  'reportingMs',
  'commitMs',
  'validationMs',
  'aggregationMs',
  'clientDownloadMs',
  'clientTrainingMs',
  'clientEncodeMs',
  'clientUploadMs',
];

export function roundsToCsv(rows: readonly RoundRow[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const row of rows) {
    lines.push(
      CSV_COLUMNS.map((column) => {
        const value = row[column];
        if (value === null) return '';
        if (typeof value === 'number' && !Number.isInteger(value)) return value.toFixed(6);
        return String(value);
      }).join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface AccuracySeries {
  label: string;
  points: readonly { round: number; accuracy: number }[];
}

const SERIES_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf'];

/**
 * A self-contained SVG line chart of accuracy (%) by round, one line per series (with a legend when
 * there are several), and the target as a dashed line.
 */
export function accuracySvg(
  series: readonly AccuracySeries[],
  options: {
    title?: string;
    target?: number | null;
    /** Bottom of the y axis in percent (lower points sit on it); default: from the data. */ yMin?: number;
  } = {},
): string {
  const width = 720;
  const height = 440;
  const margin = { left: 64, right: 24, top: 48, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = series.flatMap((s) => s.points);
  const maxRound = Math.max(1, ...all.map((p) => p.round));
  const target = options.target != null ? options.target * 100 : null;
  let yMin = options.yMin ?? Math.min(...all.map((p) => p.accuracy * 100), target ?? 100);
  yMin = Number.isFinite(yMin) ? Math.max(0, Math.floor(yMin / 10) * 10) : 0;
  const yMax = 100;
  const x = (round: number): number => margin.left + (round / maxRound) * plotW;
  const y = (percent: number): number => margin.top + (1 - (percent - yMin) / (yMax - yMin || 1)) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(options.title ?? 'Global model test accuracy')}</text>`);
  const yStep = yMax - yMin > 40 ? 10 : yMax - yMin > 10 ? 5 : 1;
  for (let v = yMin; v <= yMax + 1e-9; v += yStep) {
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${margin.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(maxRound / 10));
  for (let r = 0; r <= maxRound; r += xStep) {
    parts.push(`<line x1="${x(r).toFixed(1)}" x2="${x(r).toFixed(1)}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 5}" stroke="#333"/>`);
    parts.push(`<text x="${x(r).toFixed(1)}" y="${margin.top + plotH + 20}" text-anchor="middle">${r}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle">round</text>`);
  parts.push(`<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">test accuracy (%)</text>`);
  if (target !== null && target >= yMin) {
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(target).toFixed(1)}" y2="${y(target).toFixed(1)}" stroke="#d62728" stroke-dasharray="6 4"/>`,
    );
    parts.push(`<text x="${margin.left + plotW - 4}" y="${(y(target) - 6).toFixed(1)}" text-anchor="end" fill="#d62728">target ${target.toFixed(1)}%</text>`);
  }
  // The legend sits in the bottom-right corner, as wide as its longest label (~7 px a character at 12 px).
  const legendLeft = margin.left + plotW - 36 - 7 * Math.max(0, ...series.map((s) => s.label.length));
  series.forEach(({ label, points }, i) => {
    const color = SERIES_COLORS[i % SERIES_COLORS.length]!;
    if (points.length > 0) {
      const path = points.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p.round).toFixed(1)},${y(Math.max(yMin, p.accuracy * 100)).toFixed(1)}`).join(' ');
      parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="${series.length > 1 ? 1.5 : 2}"/>`);
      if (series.length === 1 && points.length <= 60) {
        for (const p of points)
          parts.push(`<circle cx="${x(p.round).toFixed(1)}" cy="${y(Math.max(yMin, p.accuracy * 100)).toFixed(1)}" r="2.5" fill="${color}"/>`);
      }
    }
    if (series.length > 1) {
      const ly = margin.top + plotH - 12 - (series.length - 1 - i) * 16;
      parts.push(`<line x1="${legendLeft}" x2="${legendLeft + 20}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="3"/>`);
      parts.push(`<text x="${legendLeft + 26}" y="${ly}">${escapeXml(label)}</text>`);
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Writes rounds.json (summary + rows), rounds.csv and accuracy.svg into `dir`; returns their paths. */
export async function writeSimulationOutput(
  dir: string,
  summary: SimulationSummary,
  options: { title?: string; target?: number | null } = {},
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = { json: join(dir, 'rounds.json'), csv: join(dir, 'rounds.csv'), svg: join(dir, 'accuracy.svg') };
  const points = [{ round: 0, accuracy: summary.initialAccuracy }, ...summary.rounds.map((row) => ({ round: row.round, accuracy: row.accuracy }))];
  await writeFile(files.json, `${JSON.stringify(summary, null, 2)}\n`);
  await writeFile(files.csv, roundsToCsv(summary.rounds));
  await writeFile(files.svg, accuracySvg([{ label: typeof summary.config.strategy === 'string' ? summary.config.strategy : 'accuracy', points }], options));
  return [files.json, files.csv, files.svg];
}
