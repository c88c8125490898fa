// @ts-check
/** The charts' columns from a snapshot: one point per finished round, oldest first. No DOM here. */
import { isFinished } from './round-phases.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('../dashboard-state.js').DashboardRound} DashboardRound */
/** @typedef {import('../dashboard-state.js').DashboardModelVersion} DashboardModelVersion */
/** @typedef {import('../dashboard-state.js').DashboardLocalEvaluation} DashboardLocalEvaluation */
/**
 * The interquartile range of a point across devices, and how many devices' reports it rests on.
 * @typedef {{ q1: number, q3: number, reports: number }} Whisker
 * @typedef {{ value: number | null, whisker: Whisker | null }} LocalEvaluationPoint
 */

/**
 * What the accuracy chart's local-evaluation series (1: global, 2: personal) show per round: the
 * median across devices with its interquartile range, or only the mean for summaries stored before
 * the coordinator kept quartiles.
 * @type {((e: DashboardLocalEvaluation) => LocalEvaluationPoint)[]}
 */
const LOCAL_EVALUATION_POINTS = [
  (e) => {
    if (!e.spread) return { value: e.globalAccuracy, whisker: null };
    const { q1, median, q3 } = e.spread.globalAccuracy;
    return { value: median, whisker: { q1, q3, reports: e.reports } };
  },
  (e) => {
    if (!e.spread) return { value: e.personalAccuracy, whisker: null };
    if (!e.spread.personalAccuracy) return { value: null, whisker: null };
    const { q1, median, q3 } = e.spread.personalAccuracy;
    return { value: median, whisker: { q1, q3, reports: e.spread.personalReports } };
  },
];

/** @param {DashboardState} state */
function finishedRounds(state) {
  return state.rounds.filter(isFinished).reverse();
}

/** @param {number | string | null | undefined} value */
function accuracyOf(value) {
  return typeof value === 'number' ? value : null;
}

/**
 * The test accuracy of the version the first round trained, where recorded: the accuracy chart then starts at "base" (x = 0).
 * @param {DashboardState} state
 * @param {DashboardRound[]} rounds
 */
function baseAccuracy(state, rounds) {
  const base = rounds[0] ? state.models.find((m) => m.version === rounds[0]?.baseVersion) : undefined;
  return accuracyOf(base?.metrics.testAccuracy);
}

/**
 * uPlot's aligned data per chart id: the x column (round numbers, 0 = "base"), then one per series.
 * @param {DashboardState} state
 * @returns {Record<string, (number | null)[][]>}
 */
export function chartData(state) {
  const rounds = finishedRounds(state);
  /** @type {Map<string, DashboardModelVersion>} */
  const byRound = new Map();
  for (const model of state.models) if (model.roundId) byRound.set(model.roundId, model);
  const x = rounds.map((_, i) => i + 1);
  /** @param {(r: DashboardRound) => number | null | undefined} pick */
  const column = (pick) =>
    rounds.map((r) => {
      const value = pick(r);
      return typeof value === 'number' && Number.isFinite(value) ? value : null;
    });
  const base = baseAccuracy(state, rounds);
  const lead = base === null ? [] : [0];
  const localEvaluation = LOCAL_EVALUATION_POINTS.map((point) => [
    ...lead.map(() => null),
    ...column((r) => (r.metrics.localEvaluation ? point(r.metrics.localEvaluation).value : null)),
  ]);
  return {
    'c-accuracy': [[...lead, ...x], ...localEvaluation, [...lead.map(() => base), ...column((r) => accuracyOf(byRound.get(r.id)?.metrics.testAccuracy))]],
    'c-loss': [x, column((r) => r.metrics.meanTrainLoss)],
    'c-participants': [x, column((r) => r.metrics.accepted)],
    'c-norm': [x, column((r) => r.metrics.updateNorm)],
    'c-bytes': [x, column((r) => r.metrics.bytesUp), column((r) => r.metrics.bytesDown)],
    'c-duration': [x, column((r) => (r.metrics.durationMs === null ? null : r.metrics.durationMs / 1000))],
  };
}

/**
 * The accuracy chart's whiskers by series index (1: global, 2: personal local evaluation), aligned
 * with chartData's 'c-accuracy' columns (null where a point has none).
 * @param {DashboardState} state
 * @returns {Record<number, (Whisker | null)[]>}
 */
export function accuracyWhiskers(state) {
  const rounds = finishedRounds(state);
  const lead = baseAccuracy(state, rounds) === null ? [] : [null];
  return Object.fromEntries(
    LOCAL_EVALUATION_POINTS.map((point, i) => [
      i + 1,
      [...lead, ...rounds.map((r) => (r.metrics.localEvaluation ? point(r.metrics.localEvaluation).whisker : null))],
    ]),
  );
}

/**
 * Where a rollback happened on the charts' x axis: between the last round that ended before it and
 * the next one (x = that round's number + 0.5); `from` is the version whose weights it restored.
 * @typedef {{ x: number, version: number, from: number | null }} RollbackMarker
 */

/**
 * The rollback versions among the snapshot's models, placed among its finished rounds, oldest first.
 * @param {DashboardState} state
 * @returns {RollbackMarker[]}
 */
export function rollbackMarkers(state) {
  const ends = finishedRounds(state).map((r) => Date.parse(r.endedAt ?? r.updatedAt));
  return state.models
    .filter((model) => model.source === 'rollback')
    .map((model) => {
      const at = Date.parse(model.createdAt);
      const before = ends.filter((end) => end <= at).length;
      const from = model.metrics.rolledBackFrom;
      return { x: before + 0.5, version: model.version, from: typeof from === 'number' ? from : null };
    })
    .reverse();
}
