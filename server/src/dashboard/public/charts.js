// @ts-check
/** The six uPlot charts: what each shows, how it looks, and keeping them in step with snapshots. */
import uPlot from 'uplot';
import { accuracyWhiskers, chartData, rollbackMarkers } from './chart-data.js';
import { byId, el } from './dom.js';
import { formatBytes, formatDuration, pct } from './format.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('./chart-data.js').Whisker} Whisker */
/** @typedef {import('./chart-data.js').RollbackMarker} RollbackMarker */
/**
 * @typedef {{ label: string, color: string, bars?: boolean, dash?: number[] }} SeriesSpec
 * @typedef {(state: DashboardState) => Record<number, (Whisker | null)[]>} WhiskerData
 * @typedef {{ id: string, series: SeriesSpec[], format: (v: number) => string, fit?: 'accuracy', whiskers?: WhiskerData }} ChartSpec
 */

const COLORS = { blue: '#3b6df0', green: '#1f9d62', violet: '#8b5cf6', amber: '#d98a0b', red: '#d2453b', slate: '#52607a' };
const HEIGHT = 180;

/** @type {ChartSpec[]} */
const CHART_SPECS = [
  {
    id: 'c-accuracy',
    series: [
      { label: 'global (local eval, median)', color: COLORS.blue },
      { label: 'personal (local eval, median)', color: COLORS.violet },
      { label: 'test set', color: COLORS.green, dash: [5, 4] },
    ],
    format: (v) => pct(v),
    fit: 'accuracy',
    // Devices' local tests: the interquartile range across devices as whiskers, the report count in the legend.
    whiskers: accuracyWhiskers,
  },
  { id: 'c-loss', series: [{ label: 'mean train loss', color: COLORS.amber }], format: (v) => (v === 0 ? '0' : v.toFixed(3)) },
  { id: 'c-participants', series: [{ label: 'accepted', color: COLORS.green, bars: true }], format: (v) => String(Math.round(v)) },
  { id: 'c-norm', series: [{ label: 'update norm', color: COLORS.red }], format: (v) => (v === 0 ? '0' : v.toPrecision(3)) },
  {
    id: 'c-bytes',
    series: [
      { label: 'bytes up (accepted uploads)', color: COLORS.slate, bars: true },
      { label: 'bytes down (base version)', color: COLORS.blue },
    ],
    format: formatBytes,
  },
  {
    id: 'c-duration',
    series: [{ label: 'duration', color: COLORS.blue, bars: true }],
    format: (v) => (v === 0 ? '0' : v < 1 ? `${Math.round(v * 1000)} ms` : v < 60 ? `${v.toFixed(1)} s` : formatDuration(v * 1000)),
  },
];

/**
 * The charts drawn so far, by container id (one with no point yet shows a note instead).
 * @type {Map<string, uPlot>}
 */
const charts = new Map();
/**
 * The whiskers of the latest snapshot, by chart id (read by the draw hook and the legend).
 * @type {Map<string, Record<number, (Whisker | null)[]>>}
 */
const whiskers = new Map();
/**
 * The latest snapshot's rollbacks, drawn on every chart.
 * @type {RollbackMarker[]}
 */
let rollbacks = [];

/** Keeps each chart as wide as its card. */
export function observeChartSizes() {
  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = charts.get(entry.target.id);
      const width = Math.max(200, Math.floor(entry.contentRect.width));
      if (chart && Math.abs(chart.width - width) > 1) chart.setSize({ width, height: HEIGHT });
    }
  });
  for (const spec of CHART_SPECS) resizer.observe(byId(spec.id));
}

/** @param {DashboardState} state */
export function renderCharts(state) {
  const data = chartData(state);
  rollbacks = rollbackMarkers(state);
  byId('c-rollbacks').textContent = rollbacks.length
    ? `↺ Rollbacks (dashed lines): ${rollbacks.map((m) => `v${m.version} = v${m.from ?? '?'}'s weights, ${m.x < 1 ? 'before #1' : `after #${m.x - 0.5}`}`).join(' · ')}`
    : '';
  for (const spec of CHART_SPECS) {
    const container = byId(spec.id);
    const columns = data[spec.id] ?? [[]];
    const points = columns.slice(1).some((column) => column.some((v) => v !== null));
    let chart = charts.get(spec.id);
    if (!points) {
      chart?.destroy();
      charts.delete(spec.id);
      container.replaceChildren(el('div', { className: 'chart-empty' }, 'No finished rounds yet'));
      continue;
    }
    if (spec.whiskers) whiskers.set(spec.id, spec.whiskers(state));
    const aligned = /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (columns));
    if (chart) {
      chart.setData(aligned);
    } else {
      container.replaceChildren();
      chart = new uPlot(chartOptions(spec, container), aligned, container);
      charts.set(spec.id, chart);
    }
    showLatest(chart);
  }
}

/**
 * The legend shows the latest round's values while the cursor is off the chart.
 * @param {uPlot} chart
 */
function showLatest(chart) {
  const last = chart.data[0].length - 1;
  if (last >= 0 && (chart.cursor.idx === null || chart.cursor.idx === undefined)) chart.setLegend({ idx: last });
}

/**
 * Draws each point's interquartile range as a vertical whisker with caps, in its series' colour;
 * the series are set a few pixels apart so that overlapping ranges stay readable.
 * @param {uPlot} u
 * @param {ChartSpec} spec
 */
function drawWhiskers(u, spec) {
  const bySeries = whiskers.get(spec.id);
  if (!bySeries) return;
  const ctx = u.ctx;
  const px = devicePixelRatio;
  ctx.save();
  ctx.lineWidth = 1.5 * px;
  for (const [key, points] of Object.entries(bySeries)) {
    const index = Number(key);
    if (!u.series[index]?.show) continue;
    ctx.strokeStyle = spec.series[index - 1]?.color ?? COLORS.slate;
    const offset = (index === 1 ? -3 : 3) * px;
    ctx.beginPath();
    points.forEach((whisker, i) => {
      const xValue = u.data[0][i];
      if (!whisker || xValue === undefined) return;
      const x = u.valToPos(xValue, 'x', true) + offset;
      const low = u.valToPos(whisker.q1, 'y', true);
      const high = u.valToPos(whisker.q3, 'y', true);
      ctx.moveTo(x, low);
      ctx.lineTo(x, high);
      ctx.moveTo(x - 3 * px, low);
      ctx.lineTo(x + 3 * px, low);
      ctx.moveTo(x - 3 * px, high);
      ctx.lineTo(x + 3 * px, high);
    });
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * Each rollback as a dashed vertical line between the rounds around it, labelled with the version it created.
 * @param {uPlot} u
 */
function drawRollbacks(u) {
  if (rollbacks.length === 0) return;
  const ctx = u.ctx;
  const px = devicePixelRatio;
  const { top, height } = u.bbox;
  ctx.save();
  ctx.strokeStyle = COLORS.amber;
  ctx.fillStyle = COLORS.amber;
  ctx.lineWidth = 1.5 * px;
  ctx.setLineDash([4 * px, 3 * px]);
  ctx.font = `${10 * px}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  for (const marker of rollbacks) {
    const x = u.valToPos(marker.x, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.fillText(`↺v${marker.version}`, x + 3 * px, top + 2 * px);
  }
  ctx.restore();
}

/**
 * A legend value: the number, with its interquartile range and report count where the point has them.
 * @param {ChartSpec} spec
 * @param {number} seriesIndex
 * @param {number | null} value
 * @param {number | null | undefined} dataIndex
 */
function legendValue(spec, seriesIndex, value, dataIndex) {
  if (value === null) return '–';
  const whisker = dataIndex === null || dataIndex === undefined ? null : whiskers.get(spec.id)?.[seriesIndex]?.[dataIndex];
  if (!whisker) return spec.format(value);
  return `${spec.format(value)} (IQR ${spec.format(whisker.q1)}–${spec.format(whisker.q3)}, n=${whisker.reports})`;
}

/** The lowest whisker end of a chart, so that its y range shows whole whiskers. @param {ChartSpec} spec */
function lowestWhisker(spec) {
  let lowest = Infinity;
  for (const points of Object.values(whiskers.get(spec.id) ?? {})) for (const whisker of points) if (whisker) lowest = Math.min(lowest, whisker.q1);
  return lowest;
}

/**
 * @param {ChartSpec} spec
 * @param {HTMLElement} container
 * @returns {uPlot.Options}
 */
function chartOptions(spec, container) {
  const grid = { stroke: '#eef0f4', width: 1 };
  const axisFont = '11px system-ui, sans-serif';
  const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 28] }) : undefined;
  return {
    width: Math.max(200, container.clientWidth),
    height: HEIGHT,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    hooks: { setCursor: [(u) => showLatest(u)], draw: [(u) => drawWhiskers(u, spec), drawRollbacks] },
    legend: { show: true },
    scales: {
      x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] },
      // Accuracy: from a round tenth below the lowest point up to 100%; the rest: from 0 with headroom.
      y:
        spec.fit === 'accuracy'
          ? { range: (_u, min) => [Math.max(0, Math.floor((Math.min(min ?? 0, lowestWhisker(spec)) - 0.02) * 10) / 10), 1] }
          : { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.12 : 1] },
    },
    axes: [
      {
        stroke: '#6b7588',
        font: axisFont,
        grid: { show: false },
        ticks: { stroke: '#e3e7ef' },
        incrs: [1, 2, 5, 10, 20, 50, 100],
        values: (_u, splits) => splits.map((v) => (v === 0 ? 'base' : Number.isInteger(v) && v > 0 ? `#${v}` : '')),
      },
      { stroke: '#6b7588', font: axisFont, grid, ticks: { show: false }, size: 54, values: (_u, splits) => splits.map((v) => spec.format(v)) },
    ],
    series: [
      { label: 'round', value: (_u, v) => (v === null ? '–' : v === 0 ? 'base' : `#${v}`) },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke: s.color,
        width: s.bars ? 1 : 2,
        fill: s.bars ? `${s.color}cc` : spec.series.length === 1 ? `${s.color}14` : undefined,
        spanGaps: true,
        ...(s.dash ? { dash: s.dash } : {}),
        ...(s.bars && bars ? { paths: bars, points: { show: false } } : { points: { show: true, size: 5, fill: '#fff' } }),
        value: (/** @type {uPlot} */ _u, /** @type {number | null} */ v, /** @type {number} */ _series, /** @type {number | null} */ idx) =>
          legendValue(spec, i + 1, v, idx),
      })),
    ],
  };
}
