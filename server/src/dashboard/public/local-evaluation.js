// @ts-check
/**
 * What devices' local tests of a version say, in words: how many devices reported and robust
 * summaries across them (medians and interquartile ranges), so that a swing of the personal line
 * from one round to the next reads against how few devices it may rest on.
 */
import { pct } from './format.js';

/** @typedef {import('../dashboard-state.js').DashboardLocalEvaluation} DashboardLocalEvaluation */
/** @typedef {import('../dashboard-state.js').DashboardQuartiles} DashboardQuartiles */

/** @param {DashboardQuartiles} q */
function medianWithRange(q) {
  const worst = q.p10 === undefined ? '' : `, 10th percentile ${pct(q.p10)}`;
  return `median ${pct(q.median)} (IQR ${pct(q.q1)}–${pct(q.q3)}${worst})`;
}

/** @param {number} n */
function devices(n) {
  return `${n} device${n === 1 ? '' : 's'}`;
}

/**
 * The table cell (global accuracy's median across devices, and how many reported) and its tooltip.
 * @param {DashboardLocalEvaluation} e
 * @returns {{ cell: string, title: string }}
 */
export function describeLocalEvaluation(e) {
  if (!e.spread) {
    // Stored by an older coordinator: means only.
    return {
      cell: `${pct(e.globalAccuracy)} · n=${e.reports}`,
      title: `Tested on ${devices(e.reports)} (${e.numExamples} examples). Global: mean ${pct(e.globalAccuracy)}. Personal: mean ${pct(e.personalAccuracy)}. Adopted by ${e.adopted}.`,
    };
  }
  const { spread } = e;
  const personal = spread.personalAccuracy
    ? `Personal, on the ${devices(spread.personalReports)} with a personal model: ${medianWithRange(spread.personalAccuracy)}, better than global on ${pct(spread.personalBetterShare, 0)} of them.`
    : 'No device had a personal model.';
  // The share of devices whose own model beats the global one, with its count, in the cell itself.
  const better = spread.personalBetterShare === null ? '' : ` · personal better on ${pct(spread.personalBetterShare, 0)} of ${spread.personalReports}`;
  return {
    cell: `${pct(spread.globalAccuracy.median)} · n=${e.reports}${better}`,
    title: `Tested on ${devices(e.reports)} (${e.numExamples} examples). Global: ${medianWithRange(spread.globalAccuracy)}. ${personal} Adopted by ${e.adopted}.`,
  };
}
