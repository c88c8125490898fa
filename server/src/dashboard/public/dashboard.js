// @ts-check
/**
 * Flock operator dashboard. Plain ES module, no build step: type-checked with `tsc -p
 * src/dashboard/public/tsconfig.json` against the snapshot types in ../dashboard-state.ts.
 *
 * Data flows only with a valid operator token: it is asked for once, kept in sessionStorage, sent
 * in the `/operators` socket handshake (live snapshots) and as a bearer token on REST actions.
 */
import uPlot from 'uplot';
import { io } from 'socket.io-client';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('../dashboard-state.js').DashboardRound} DashboardRound */
/** @typedef {import('../dashboard-state.js').DashboardActiveRound} DashboardActiveRound */
/** @typedef {import('../dashboard-state.js').DashboardModelVersion} DashboardModelVersion */
/** @typedef {import('../dashboard-state.js').DashboardServerToClientEvents} ServerEvents */
/** @typedef {import('../dashboard-state.js').DashboardClientToServerEvents} ClientEvents */
/** @typedef {import('socket.io-client').Socket<ServerEvents, ClientEvents>} OperatorSocket */

const TOKEN_KEY = 'flock.operatorToken';
const PHASES = ['selecting', 'configuring', 'reporting', 'committing', 'committed'];
const TERMINAL = ['committed', 'failed', 'aborted'];
const COLORS = { blue: '#3b6df0', green: '#1f9d62', violet: '#8b5cf6', amber: '#d98a0b', red: '#d2453b', slate: '#52607a' };

/** @type {OperatorSocket | null} */
let socket = null;
/** @type {DashboardState | null} */
let latest = null;
/** Date.now() when `latest` arrived: the time left counts down from it. */
let receivedAt = 0;

// ---------------------------------------------------------------------------------------------
// DOM helpers (text only: nothing from the server is ever parsed as HTML)

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node;
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{ className?: string, title?: string }} [props]
 * @param {...(Node | string | number)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.title) node.title = props.title;
  for (const child of children) node.append(typeof child === 'number' ? String(child) : child);
  return node;
}

/**
 * @param {number | null | undefined} value
 * @param {number} [digits]
 */
function pct(value, digits = 1) {
  return typeof value === 'number' && Number.isFinite(value) ? `${(value * 100).toFixed(digits)}%` : '–';
}

/** @param {number} bytes */
function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** @param {number} ms */
function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/** @param {string} iso */
function ago(iso) {
  const ms = Date.now() - Date.parse(iso);
  if (!Number.isFinite(ms)) return '–';
  if (ms < 45_000) return 'just now';
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`;
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/** @param {Partial<Record<string, number>>} counts */
function total(counts) {
  return Object.values(counts).reduce((sum, n) => (sum ?? 0) + (n ?? 0), 0) ?? 0;
}

/** @param {string} id */
function shortId(id) {
  return id.slice(0, 8);
}

// ---------------------------------------------------------------------------------------------
// Token, socket and REST

function showLogin(/** @type {string} */ message = '') {
  byId('app').hidden = true;
  byId('logout').hidden = true;
  byId('login').hidden = false;
  byId('login-error').textContent = message;
  setConnection('off', 'offline');
  /** @type {HTMLInputElement} */ (byId('token')).focus();
}

/**
 * @param {'on' | 'off' | 'wait'} mode
 * @param {string} text
 */
function setConnection(mode, text) {
  byId('conn').className = `conn conn-${mode}`;
  byId('conn-text').textContent = text;
}

/** @param {string} token */
function connect(token) {
  socket?.disconnect();
  setConnection('wait', 'connecting…');
  /** @type {OperatorSocket} */
  const s = io('/operators', { auth: { token }, transports: ['websocket'] });
  socket = s;
  s.on('connect', () => {
    setConnection('on', 'live');
    byId('login').hidden = true;
    byId('app').hidden = false;
    byId('logout').hidden = false;
  });
  s.on('connect_error', (error) => {
    if (error.message === 'unauthorized') {
      s.disconnect();
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('The coordinator refused this token.');
    } else {
      setConnection('wait', 'reconnecting…');
    }
  });
  s.on('disconnect', () => {
    if (socket === s) setConnection('wait', 'reconnecting…');
  });
  s.on('dashboard:state', (state) => {
    latest = state;
    receivedAt = Date.now();
    render(state);
  });
}

function logout(/** @type {string} */ message = '') {
  socket?.disconnect();
  socket = null;
  latest = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(message);
}

/**
 * Operator REST call with the token; a 401 signs out.
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<{ ok: boolean, status: number, body: unknown }>}
 */
async function api(path, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY) ?? '';
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${token}`);
  if (init.body) headers.set('Content-Type', 'application/json');
  const response = await fetch(path, { ...init, headers });
  const text = await response.text();
  /** @type {unknown} */
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  if (response.status === 401) logout('The operator token is no longer accepted.');
  return { ok: response.ok, status: response.status, body };
}

/** @param {unknown} body */
function errorMessage(body) {
  if (body && typeof body === 'object' && 'message' in body) {
    const { message } = /** @type {{ message: unknown }} */ (body);
    if (Array.isArray(message)) return message.join('; ');
    if (typeof message === 'string') return message;
  }
  return typeof body === 'string' && body ? body.slice(0, 200) : 'request failed';
}

/**
 * @param {HTMLElement} target
 * @param {string} text
 * @param {'ok' | 'error' | ''} kind
 */
function flash(target, text, kind) {
  target.textContent = text;
  target.className = `small ${kind}`;
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** @param {DashboardState} state */
function render(state) {
  renderStats(state);
  renderRound(state);
  renderForm(state);
  renderCharts(state);
  renderModels(state);
  renderRounds(state);
  byId('updated').textContent = `updated ${new Date(state.serverTime).toLocaleTimeString()}`;
}

/** @param {DashboardState} state */
function renderStats(state) {
  const { clients, models, rounds } = state;
  byId('s-connected').textContent = String(clients.connected);
  byId('s-eligible').textContent = String(clients.eligible);
  byId('s-eligible-sub').textContent = clients.connected ? `${pct(clients.eligible / clients.connected, 0)} of connected` : '';
  byId('s-inround').textContent = String(clients.inRound);
  const current = models[0];
  byId('s-version').textContent = current ? `v${current.version}` : '–';
  const accuracy = current?.metrics.testAccuracy;
  byId('s-version-sub').textContent = current
    ? `${current.source}${typeof accuracy === 'number' ? ` · test acc. ${pct(accuracy)}` : ''} · ${ago(current.createdAt)}`
    : '';
  const committed = rounds.filter((r) => r.status === 'committed').length;
  byId('s-rounds').textContent = String(rounds.length);
  byId('s-rounds-sub').textContent = rounds.length ? `${committed} committed · ${rounds.length - committed} not` : '';
}

/** @param {DashboardState} state */
function renderRound(state) {
  const round = state.activeRound;
  const last = round ?? state.rounds[0] ?? null;
  const phases = byId('r-phases');
  phases.replaceChildren(
    ...PHASES.map((phase, i) => {
      let className = '';
      if (last) {
        const at = PHASES.indexOf(last.status);
        if (last.status === 'committed') className = phase === 'committed' ? 'good' : 'done';
        else if (at >= 0) className = i < at ? 'done' : i === at ? 'now' : '';
        else if (phase === 'committed') className = 'bad';
      }
      const label = !round && last && phase === 'committed' && last.status !== 'committed' ? last.status : phase;
      return el('li', { className }, label);
    }),
  );
  byId('r-id').textContent = last ? `round ${shortId(last.id)}` : '';
  byId('r-cancel').hidden = !round;
  const body = byId('r-body');
  if (!round) {
    body.replaceChildren(
      el('div', { className: 'empty' }, 'No round in flight.'),
      ...(last ? [el('div', { className: 'round-note' }, lastRoundNote(last))] : []),
    );
    return;
  }
  const m = round.metrics;
  const rejected = total(m.rejected);
  const dropped = total(m.dropped);
  const training = round.status === 'reporting' || round.status === 'configuring' ? Math.max(0, m.selected - m.accepted - rejected - dropped) : 0;
  const target = Math.max(round.params.targetClients, m.selected, 1);
  const bar = el('div', { className: 'progress', title: `${m.accepted} accepted, ${rejected} rejected, ${dropped} dropped of ${target}` });
  for (const [className, n] of /** @type {const} */ ([['p-acc', m.accepted], ['p-rej', rejected], ['p-drop', dropped]])) {
    const part = el('span', { className });
    part.style.width = `${Math.min(100, (n / target) * 100)}%`;
    bar.append(part);
  }
  /** @param {string} label @param {string | number} value @param {string} [className] */
  const kv = (label, value, className = '') => {
    const item = el('div', { className }, el('dt', {}, label), el('dd', {}, value));
    return item;
  };
  const timeLeft = kv('Time left', '–', 'time');
  timeLeft.querySelector('dd')?.setAttribute('id', 'r-time-left');
  const chips = el('div', { className: 'chips' });
  if (rejected) chips.append(el('span', { className: 'label' }, 'Rejected:'), ...reasonChips(m.rejected, 'chip red'));
  if (dropped) chips.append(el('span', { className: 'label' }, 'Dropped:'), ...reasonChips(m.dropped, 'chip grey'));
  const plan = round.params.plan;
  body.replaceChildren(
    bar,
    el('div', { className: 'progress-legend' }, el('span', {}, `${m.accepted} / ${round.params.targetClients} target · quorum ${round.params.minClients}`), el('span', {}, `${m.eligibleAtSelection} eligible at selection`)),
    el(
      'dl',
      { className: 'kv' },
      kv('Selected', m.selected),
      kv('Training', training),
      kv('Reported', m.reported),
      kv('Accepted', m.accepted),
      kv('Rejected', rejected),
      timeLeft,
    ),
    chips,
    el(
      'div',
      { className: 'round-note' },
      `Trains v${round.baseVersion} · ${round.params.strategy} · E=${plan.epochs}, B=${plan.batchSize}, η=${plan.learningRate} · dropped ${dropped} · ${formatBytes(m.bytesReceived)} received · started ${ago(round.createdAt)}`,
    ),
  );
  tick();
}

/**
 * @param {Partial<Record<string, number>>} counts
 * @param {string} className
 */
function reasonChips(counts, className) {
  return Object.entries(counts)
    .filter(([, n]) => n)
    .map(([reason, n]) => el('span', { className }, `${reason.replaceAll('_', ' ')} × ${n}`));
}

/** @param {DashboardRound} round */
function lastRoundNote(round) {
  const m = round.metrics;
  const outcome = round.status === 'committed' ? `committed v${round.committedVersion}` : `${round.status}${round.error ? `: ${round.error}` : ''}`;
  return `Last round ${shortId(round.id)} ${outcome} · ${m.accepted} accepted, ${total(m.rejected)} rejected, ${total(m.dropped)} dropped · ${ago(round.endedAt ?? round.updatedAt)}`;
}

/** Updates the countdown between snapshots. */
function tick() {
  const target = document.getElementById('r-time-left');
  const round = latest?.activeRound;
  if (!target || !round) return;
  if (round.timeLeftMs === null) {
    target.textContent = round.status === 'selecting' ? 'selecting' : '–';
    return;
  }
  target.textContent = formatDuration(round.timeLeftMs - (Date.now() - receivedAt));
}

let strategiesShown = '';
/** @param {DashboardState} state */
function renderForm(state) {
  const select = /** @type {HTMLSelectElement} */ (byId('strategy'));
  const names = state.strategies.map((s) => s.name);
  const key = names.join(',');
  if (key !== strategiesShown) {
    const chosen = select.value || state.defaultStrategy;
    select.replaceChildren(...names.map((name) => el('option', {}, name)));
    select.value = names.includes(chosen) ? chosen : state.defaultStrategy;
    strategiesShown = key;
    renderStrategyHint();
  }
  const button = /** @type {HTMLButtonElement} */ (byId('start-btn'));
  button.disabled = state.activeRound !== null;
  button.title = state.activeRound ? 'One round at a time: wait for the round in flight to end' : '';
}

/** What the chosen strategy does and accepts; its defaults as the options field's placeholder. */
function renderStrategyHint() {
  const name = /** @type {HTMLSelectElement} */ (byId('strategy')).value;
  const strategy = latest?.strategies.find((s) => s.name === name);
  const input = /** @type {HTMLInputElement} */ (byId('strategy-options'));
  input.placeholder = strategy && Object.keys(strategy.defaults).length > 0 ? JSON.stringify(strategy.defaults) : '{}';
  byId('strategy-hint').textContent = strategy ? `${strategy.summary} Options: ${strategy.options.join(', ')}.` : '';
}

// ---------------------------------------------------------------------------------------------
// Charts (uPlot): one point per finished round, oldest first

/** @type {Map<string, uPlot>} */
const charts = new Map();

/**
 * @typedef {{ label: string, color: string, bars?: boolean, dash?: number[] }} SeriesSpec
 * @typedef {{ id: string, series: SeriesSpec[], format: (v: number) => string, fit?: 'accuracy' }} ChartSpec
 */

/** @type {ChartSpec[]} */
const CHART_SPECS = [
  {
    id: 'c-accuracy',
    series: [
      { label: 'global (local eval)', color: COLORS.blue },
      { label: 'personal (local eval)', color: COLORS.violet },
      { label: 'test set', color: COLORS.green, dash: [5, 4] },
    ],
    format: (v) => pct(v),
    fit: 'accuracy',
  },
  { id: 'c-loss', series: [{ label: 'mean train loss', color: COLORS.amber }], format: (v) => (v === 0 ? '0' : v.toFixed(3)) },
  { id: 'c-participants', series: [{ label: 'accepted', color: COLORS.green, bars: true }], format: (v) => String(Math.round(v)) },
  { id: 'c-norm', series: [{ label: 'update norm', color: COLORS.red }], format: (v) => (v === 0 ? '0' : v.toPrecision(3)) },
  { id: 'c-bytes', series: [{ label: 'bytes received', color: COLORS.slate, bars: true }], format: formatBytes },
  { id: 'c-duration', series: [{ label: 'duration', color: COLORS.blue, bars: true }], format: (v) => (v === 0 ? '0' : v < 1 ? `${Math.round(v * 1000)} ms` : v < 60 ? `${v.toFixed(1)} s` : formatDuration(v * 1000)) },
];

/**
 * @param {DashboardState} state
 * @returns {Record<string, (number | null)[][]>}
 */
function chartData(state) {
  const rounds = state.rounds.filter((r) => TERMINAL.includes(r.status)).reverse();
  /** @type {Map<string, DashboardModelVersion>} */
  const byRound = new Map();
  for (const model of state.models) if (model.roundId) byRound.set(model.roundId, model);
  const x = rounds.map((_, i) => i + 1);
  /** @param {(r: DashboardRound) => number | null | undefined} pick */
  const column = (pick) => rounds.map((r) => {
    const value = pick(r);
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  });
  /** @param {number | string | null | undefined} value */
  const accuracyOf = (value) => (typeof value === 'number' ? value : null);
  // The accuracy chart starts at "base": the test accuracy of the version the first round trained, where recorded.
  const base = rounds[0] ? state.models.find((m) => m.version === rounds[0]?.baseVersion) : undefined;
  const baseAccuracy = accuracyOf(base?.metrics.testAccuracy);
  const lead = baseAccuracy === null ? [] : [0];
  return {
    'c-accuracy': [
      [...lead, ...x],
      [...lead.map(() => null), ...column((r) => r.metrics.localEvaluation?.globalAccuracy)],
      [...lead.map(() => null), ...column((r) => r.metrics.localEvaluation?.personalAccuracy)],
      [...lead.map(() => baseAccuracy), ...column((r) => accuracyOf(byRound.get(r.id)?.metrics.testAccuracy))],
    ],
    'c-loss': [x, column((r) => r.metrics.meanTrainLoss)],
    'c-participants': [x, column((r) => r.metrics.accepted)],
    'c-norm': [x, column((r) => r.metrics.updateNorm)],
    'c-bytes': [x, column((r) => r.metrics.bytesReceived)],
    'c-duration': [x, column((r) => (r.metrics.durationMs === null ? null : r.metrics.durationMs / 1000))],
  };
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
    height: 180,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    hooks: { setCursor: [(u) => showLatest(u)] },
    legend: { show: true },
    scales: {
      x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] },
      // Accuracy: from a round tenth below the lowest point up to 100%; the rest: from 0 with headroom.
      y:
        spec.fit === 'accuracy'
          ? { range: (_u, min) => [Math.max(0, Math.floor(((min ?? 0) - 0.02) * 10) / 10), 1] }
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
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.bars ? 1 : 2,
        fill: s.bars ? `${s.color}cc` : spec.series.length === 1 ? `${s.color}14` : undefined,
        spanGaps: true,
        ...(s.dash ? { dash: s.dash } : {}),
        ...(s.bars && bars ? { paths: bars, points: { show: false } } : { points: { show: true, size: 5, fill: '#fff' } }),
        value: (/** @type {uPlot} */ _u, /** @type {number | null} */ v) => (v === null ? '–' : spec.format(v)),
      })),
    ],
  };
}

/** @param {DashboardState} state */
function renderCharts(state) {
  const data = chartData(state);
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

const resizer = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const chart = charts.get(entry.target.id);
    const width = Math.max(200, Math.floor(entry.contentRect.width));
    if (chart && Math.abs(chart.width - width) > 1) chart.setSize({ width, height: 180 });
  }
});

// ---------------------------------------------------------------------------------------------
// Tables

/** @param {DashboardState} state */
function renderModels(state) {
  // Rounds are numbered as in the rounds table and the charts' x axis (#1 = oldest shown).
  /** @type {Map<string, number>} */
  const roundNumber = new Map(state.rounds.map((round, i) => [round.id, state.rounds.length - i]));
  const rows = state.models.map((model, i) => {
    const accuracy = model.metrics.testAccuracy;
    const clients = model.metrics.clients;
    const actions = el('td', { className: 'num' });
    if (i > 0) {
      const button = el('button', { className: 'small-btn', title: `Make v${model.version}'s weights current again (creates a new version)` }, 'Roll back');
      button.type = 'button';
      button.addEventListener('click', () => void rollback(model.version, button));
      actions.append(button);
    } else {
      actions.append(el('span', { className: 'badge current' }, 'current'));
    }
    const source = model.source === 'rollback' && model.parentVersion !== null ? `rollback of v${model.metrics.rolledBackFrom ?? '?'}` : model.source;
    const row = el(
      'tr',
      { className: i === 0 ? 'current' : '' },
      el('td', {}, el('strong', {}, `v${model.version}`)),
      el('td', {}, el('span', { className: 'badge' }, source)),
      el('td', { className: 'mono', title: model.roundId ?? '' }, model.roundId ? roundLabel(model.roundId, roundNumber) : '–'),
      el('td', { className: 'num' }, typeof accuracy === 'number' ? pct(accuracy) : '–'),
      el('td', { className: 'num' }, typeof clients === 'number' ? clients : '–'),
      el('td', { title: model.createdAt }, ago(model.createdAt)),
      actions,
    );
    return row;
  });
  byId('models').replaceChildren(...rows);
}

/**
 * @param {string} roundId
 * @param {Map<string, number>} numbers
 */
function roundLabel(roundId, numbers) {
  const n = numbers.get(roundId);
  return n === undefined ? shortId(roundId) : `#${n} · ${shortId(roundId)}`;
}

/** @param {DashboardState} state */
function renderRounds(state) {
  const n = state.rounds.length;
  if (!n) {
    const cell = el('td', { className: 'empty' }, 'No rounds yet: start one with the form above.');
    cell.colSpan = 7;
    byId('rounds').replaceChildren(el('tr', {}, cell));
    return;
  }
  byId('rounds').replaceChildren(
    ...state.rounds.map((round, i) => {
      const live = !TERMINAL.includes(round.status);
      const m = round.metrics;
      return el(
        'tr',
        {},
        el('td', { className: 'mono', title: round.id }, `#${n - i}`),
        el('td', {}, el('span', { className: `badge ${live ? 'live' : round.status}`, title: round.error ?? '' }, round.status)),
        el('td', { className: 'num' }, m.accepted),
        el('td', { className: 'num' }, total(m.rejected)),
        el('td', { className: 'num' }, total(m.dropped)),
        el('td', {}, round.committedVersion ? `v${round.committedVersion}` : '–'),
        el('td', { title: round.createdAt }, ago(round.createdAt)),
      );
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Actions (REST, with the token)

/**
 * @param {number} version
 * @param {HTMLButtonElement} button
 */
async function rollback(version, button) {
  const message = byId('m-msg');
  if (!confirm(`Roll back to v${version}? Its weights become a new current version; history is kept.`)) return;
  button.disabled = true;
  try {
    const { ok, body } = await api(`/api/models/${version}/rollback`, { method: 'POST' });
    if (ok) {
      const created = /** @type {{ version?: number }} */ (body).version;
      flash(message, `v${created} created from v${version}`, 'ok');
    } else {
      flash(message, errorMessage(body), 'error');
    }
  } catch (error) {
    flash(message, String(error), 'error');
  } finally {
    button.disabled = false;
  }
}

/** @param {SubmitEvent} event */
async function startRound(event) {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  const message = byId('start-msg');
  const data = new FormData(form);
  /** @param {string} name */
  const num = (name) => Number(data.get(name));
  const body = {
    minClients: num('minClients'),
    targetClients: num('targetClients'),
    deadlineSeconds: num('deadlineSeconds'),
    epochs: num('epochs'),
    batchSize: num('batchSize'),
    learningRate: num('learningRate'),
    overSelection: num('overSelection'),
    strategy: String(data.get('strategy') ?? ''),
  };
  if (Object.values(body).some((v) => typeof v === 'number' && !(v > 0))) {
    flash(message, 'Every number must be positive.', 'error');
    return;
  }
  const optionsText = String(data.get('strategyOptions') ?? '').trim();
  if (optionsText !== '') {
    /** @type {unknown} */
    let options;
    try {
      options = JSON.parse(optionsText);
    } catch {
      options = null;
    }
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      flash(message, 'Strategy options must be a JSON object, e.g. {"serverLearningRate": 0.01}.', 'error');
      return;
    }
    Object.assign(body, { strategyOptions: options });
  }
  if (body.targetClients < body.minClients) {
    flash(message, 'Target clients must be at least min clients.', 'error');
    return;
  }
  const button = /** @type {HTMLButtonElement} */ (byId('start-btn'));
  button.disabled = true;
  flash(message, 'Starting…', '');
  try {
    const { ok, body: response } = await api('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
    if (ok) flash(message, `Round ${shortId(/** @type {{ id: string }} */ (response).id)} started`, 'ok');
    else flash(message, errorMessage(response), 'error');
  } catch (error) {
    flash(message, String(error), 'error');
  } finally {
    button.disabled = latest?.activeRound != null;
  }
}

async function cancelRound() {
  const round = latest?.activeRound;
  if (!round || !confirm(`Cancel round ${shortId(round.id)}? The global model stays as it is.`)) return;
  const { ok, body } = await api(`/api/rounds/${round.id}/cancel`, { method: 'POST' });
  if (!ok) alert(errorMessage(body));
}

// ---------------------------------------------------------------------------------------------
// Start

function main() {
  byId('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('token'));
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = '';
    byId('login-error').textContent = '';
    connect(token);
  });
  byId('logout').addEventListener('click', () => logout());
  byId('start-form').addEventListener('submit', (event) => void startRound(/** @type {SubmitEvent} */ (event)));
  byId('strategy').addEventListener('change', renderStrategyHint);
  byId('r-cancel').addEventListener('click', () => void cancelRound());
  for (const spec of CHART_SPECS) resizer.observe(byId(spec.id));
  setInterval(tick, 250);
  // Relative times ("2 min ago") age between snapshots.
  setInterval(() => latest && (renderModels(latest), renderRounds(latest)), 30_000);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
  else showLogin();
}

main();
