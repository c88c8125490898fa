// @ts-check
/** The charts' columns from a snapshot: one point per finished round, oldest first. No DOM here. */
import { isFinished } from './round-phases.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('../dashboard-state.js').DashboardRound} DashboardRound */
/** @typedef {import('../dashboard-state.js').DashboardModelVersion} DashboardModelVersion */

/**
 * uPlot's aligned data per chart id: the x column (round numbers, 0 = "base"), then one per series.
 * @param {DashboardState} state
 * @returns {Record<string, (number | null)[][]>}
 */
export function chartData(state) {
  const rounds = state.rounds.filter(isFinished).reverse();
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
