// @ts-check
/** The "Current round" card: its phase strip, progress, counters, countdown and cancel button. */
import { api, errorMessage, reportFailure } from './api.js';
import { byId, el } from './dom.js';
import { ago, formatBytes, formatDuration, shortId, total } from './format.js';
import { latestState, sinceLatestMs } from './latest.js';
import { PHASES } from './round-phases.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('../dashboard-state.js').DashboardRound} DashboardRound */

/** Wires the cancel button and runs the countdown between snapshots. */
export function initRoundPanel() {
  byId('r-cancel').addEventListener('click', () => {
    cancelRound().catch(reportFailure);
  });
  setInterval(tick, 250);
}

/** @param {DashboardState} state */
export function renderRound(state) {
  const round = state.activeRound;
  const last = round ?? state.rounds[0] ?? null;
  // Idle, no step is current: the strip shows the steps of a round, the note below how the last one ended.
  const phases = byId('r-phases');
  phases.classList.toggle('idle', !round);
  phases.replaceChildren(...PHASES.map((phase, i) => el('li', { className: round ? phaseClass(round.status, phase, i) : '' }, phase)));
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
  for (const [className, n] of /** @type {const} */ ([
    ['p-acc', m.accepted],
    ['p-rej', rejected],
    ['p-drop', dropped],
  ])) {
    const part = el('span', { className });
    part.style.width = `${Math.min(100, (n / target) * 100)}%`;
    bar.append(part);
  }
  /** @param {string} label @param {string | number} value @param {string} [className] */
  const kv = (label, value, className = '') => el('div', { className }, el('dt', {}, label), el('dd', {}, value));
  const timeLeft = kv('Time left', '–', 'time');
  timeLeft.querySelector('dd')?.setAttribute('id', 'r-time-left');
  const chips = el('div', { className: 'chips' });
  if (rejected) chips.append(el('span', { className: 'label' }, 'Rejected:'), ...reasonChips(m.rejected, 'chip red'));
  if (dropped) chips.append(el('span', { className: 'label' }, 'Dropped:'), ...reasonChips(m.dropped, 'chip grey'));
  const plan = round.params.plan;
  body.replaceChildren(
    bar,
    el(
      'div',
      { className: 'progress-legend' },
      el('span', {}, `${m.accepted} / ${round.params.targetClients} target · quorum ${round.params.minClients}`),
      el('span', {}, `${m.eligibleAtSelection} eligible at selection`),
    ),
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
      `Trains v${round.baseVersion} · ${round.params.strategy} · E=${plan.epochs}, B=${plan.batchSize}, η=${plan.learningRate} · dropped ${dropped} · ${formatBytes(m.bytesUp)} up, ${formatBytes(m.bytesDown)} down${plan.compression ? ` (${plan.compression.kind})` : ''} · started ${ago(round.createdAt)}`,
    ),
    el('div', { className: 'round-note' }, influenceNote(m)),
  );
  tick();
}

/**
 * How the strip marks `phase` (at index i of PHASES) while a round of `status` is in flight.
 * @param {string} status
 * @param {string} phase
 * @param {number} i
 */
function phaseClass(status, phase, i) {
  const at = PHASES.indexOf(status);
  if (at >= 0) return i < at ? 'done' : i === at ? 'now' : '';
  return phase === 'committed' ? 'bad' : ''; // not expected in flight: an ending other than the good one
}

/**
 * Bounded influence (docs/SECURITY.md): the round's L2 bound and example cap, and how many updates they held back.
 * @param {DashboardRound['metrics']} m
 */
function influenceNote(m) {
  const bound = m.updateBound === null ? 'norm bound off' : `norm bound ${m.updateBound.toPrecision(3)}`;
  const cap = m.exampleCap === null ? '' : ` · counts capped at ${m.exampleCap}`;
  return `${bound}${cap} · ${m.clippedUpdates} clipped, ${m.clampedExamples} counts clamped`;
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
  const round = latestState()?.activeRound;
  if (!target || !round) return;
  if (round.timeLeftMs === null) {
    target.textContent = round.status === 'selecting' ? 'selecting' : '–';
    return;
  }
  target.textContent = formatDuration(round.timeLeftMs - sinceLatestMs());
}

async function cancelRound() {
  const round = latestState()?.activeRound;
  if (!round || !confirm(`Cancel round ${shortId(round.id)}? The global model stays as it is.`)) return;
  const { ok, body } = await api(`/api/rounds/${round.id}/cancel`, { method: 'POST' });
  if (!ok) alert(errorMessage(body));
}
