// @ts-check
/**
 * The Serving panel: the version `global` serves, request rate and latency (a uPlot chart of the
 * last minutes, sampled from `GET /api/serving` every few seconds), the new version's deviation from
 * the previous one, and the monitor's actions.
 */
import uPlot from 'uplot';
import { api } from './api.js';
import { byId, el } from './dom.js';

/** @typedef {import('../../contract/serving.js').ServingStatus} ServingStatus */

const POLL_MS = 3000;
/** Samples kept for the chart (10 minutes). */
const KEPT = 200;

/** @type {{ t: number[], rate: number[], p50: number[], p99: number[] }} */
const series = { t: [], rate: [], p50: [], p99: [] };
/** @type {{ at: number, requests: number } | null} */
let previous = null;
/** @type {uPlot | null} */
let chart = null;

/** @param {number | null | undefined} value */
function fixed(value, digits = 3) {
  return value === null || value === undefined ? '–' : value.toFixed(digits);
}

/** @param {ServingStatus} status */
function renderText(status) {
  byId('sv-version').textContent = status.currentVersion === null ? 'not started' : `v${status.currentVersion}`;
  byId('sv-requests').textContent = String(status.requests);
  byId('sv-latency').textContent = status.latency ? `${status.latency.p50Ms.toFixed(1)} / ${status.latency.p99Ms.toFixed(1)} ms` : '–';
  const { maxBatchSize, maxQueueDelayMs, workers } = status.batching;
  byId('sv-batching').textContent = `${workers} worker${workers === 1 ? '' : 's'}, batch ≤ ${maxBatchSize}, delay ${maxQueueDelayMs} ms`;
  const d = status.deviation;
  byId('sv-deviation').textContent = d
    ? `v${d.version} vs v${d.previousVersion}: PSI ${fixed(d.psi)}, JS ${fixed(d.js)}, shadow disagreement ${fixed(d.disagreement)}`
    : 'no new version measured yet';
  const current = status.versions.find((v) => v.version === status.currentVersion);
  const feedback =
    current && current.feedback > 0 ? `${((100 * current.feedbackCorrect) / current.feedback).toFixed(1)}% of ${current.feedback} labelled` : '–';
  const devices =
    current && current.deviceAccuracy !== null ? `; devices' tests ${(100 * current.deviceAccuracy).toFixed(1)}% (${current.deviceEvaluations})` : '';
  byId('sv-accuracy').textContent = feedback + devices;
  const actions = byId('sv-actions');
  actions.replaceChildren(
    ...(status.actions.length === 0
      ? [el('tr', {}, el('td', { className: 'muted' }, 'none'))]
      : status.actions.map((a) =>
          el(
            'tr',
            {},
            el('td', {}, new Date(a.at).toLocaleTimeString()),
            el('td', {}, `v${a.version}`),
            el('td', {}, `${a.signal} ${a.value.toFixed(3)} > ${a.threshold}`),
            el('td', {}, a.action),
            el('td', { className: 'small' }, a.outcome),
          ),
        )),
  );
}

/** @param {ServingStatus} status */
function renderChart(status) {
  const now = Date.now() / 1000;
  if (previous) {
    series.t.push(now);
    series.rate.push(Math.max(0, (status.requests - previous.requests) / (now - previous.at)));
    series.p50.push(status.latency?.p50Ms ?? 0);
    series.p99.push(status.latency?.p99Ms ?? 0);
    for (const values of Object.values(series)) if (values.length > KEPT) values.shift();
  }
  previous = { at: now, requests: status.requests };
  const container = byId('sv-chart');
  const data = /** @type {uPlot.AlignedData} */ ([series.t, series.rate, series.p50, series.p99]);
  if (chart) {
    chart.setData(data);
    return;
  }
  if (series.t.length === 0) return;
  container.replaceChildren();
  chart = new uPlot(
    {
      width: Math.max(240, container.clientWidth),
      height: 160,
      series: [
        {},
        { label: 'requests/s', stroke: '#3b6df0', scale: 'rate', value: (_u, v) => (v === null ? '–' : v.toFixed(1)) },
        { label: 'p50 ms', stroke: '#1f9d62', scale: 'ms', value: (_u, v) => (v === null ? '–' : v.toFixed(1)) },
        { label: 'p99 ms', stroke: '#d98a0b', scale: 'ms', dash: [5, 4], value: (_u, v) => (v === null ? '–' : v.toFixed(1)) },
      ],
      axes: [{}, { scale: 'rate' }, { scale: 'ms', side: 1, grid: { show: false } }],
    },
    data,
    container,
  );
}

async function poll() {
  try {
    const response = await api('/api/serving');
    if (!response.ok) return;
    const status = /** @type {ServingStatus} */ (response.body);
    renderText(status);
    renderChart(status);
  } catch {
    // The next poll tries again (the live connection shows whether the coordinator is there).
  }
}

/** Starts polling once the page is signed in. */
export function initServingPanel() {
  setInterval(() => {
    if (!byId('app').hidden) poll().catch(() => undefined);
  }, POLL_MS);
}
