// @ts-check
/**
 * "Export CSV" of the rounds table: every round the coordinator has (the REST API, paged, with the
 * operator token), one row each, written by csv-stringify's browser build (quoting, escaping) and
 * saved as a file. Built in the page rather than by a server route so that the token stays in a
 * header (a download link would have to carry it in its URL) and the server keeps one rounds API.
 */
import { stringify } from 'csv-stringify/browser/esm/sync';
import { api, errorMessage, reportFailure } from './api.js';
import { byId, flash } from './dom.js';
import { total } from './format.js';

/** @typedef {import('../dashboard-state.js').DashboardRound} DashboardRound */

/** The API's largest page. */
const PAGE = 1000;

/**
 * The CSV's columns: a header and how to read it from a round (numbers as they are, '' for none).
 * @type {[string, (r: DashboardRound) => string | number | null | undefined][]}
 */
const COLUMNS = [
  ['id', (r) => r.id],
  ['status', (r) => r.status],
  ['base_version', (r) => r.baseVersion],
  ['committed_version', (r) => r.committedVersion],
  ['created_at', (r) => r.createdAt],
  ['ended_at', (r) => r.endedAt],
  ['duration_ms', (r) => r.metrics.durationMs],
  ['strategy', (r) => r.params.strategy],
  ['min_clients', (r) => r.params.minClients],
  ['target_clients', (r) => r.params.targetClients],
  ['over_selection', (r) => r.params.overSelection],
  ['deadline_ms', (r) => r.params.deadlineMs],
  ['epochs', (r) => r.params.plan.epochs],
  ['batch_size', (r) => r.params.plan.batchSize],
  ['learning_rate', (r) => r.params.plan.learningRate],
  ['eligible_at_selection', (r) => r.metrics.eligibleAtSelection],
  ['selected', (r) => r.metrics.selected],
  ['reported', (r) => r.metrics.reported],
  ['accepted', (r) => r.metrics.accepted],
  ['rejected', (r) => total(r.metrics.rejected)],
  ['dropped', (r) => total(r.metrics.dropped)],
  ['total_examples', (r) => r.metrics.totalExamples],
  ['mean_train_loss', (r) => r.metrics.meanTrainLoss],
  ['update_norm', (r) => r.metrics.updateNorm],
  ['bytes_received', (r) => r.metrics.bytesReceived],
  ['bytes_up', (r) => r.metrics.bytesUp],
  ['bytes_down', (r) => r.metrics.bytesDown],
  ['aggregation_ms', (r) => r.metrics.aggregationMs],
  ['local_eval_reports', (r) => r.metrics.localEvaluation?.reports],
  ['local_eval_global_accuracy_median', (r) => r.metrics.localEvaluation?.spread?.globalAccuracy.median],
  ['local_eval_personal_reports', (r) => r.metrics.localEvaluation?.spread?.personalReports],
  ['local_eval_personal_accuracy_median', (r) => r.metrics.localEvaluation?.spread?.personalAccuracy?.median],
  ['local_eval_personal_accuracy_p10', (r) => r.metrics.localEvaluation?.spread?.personalAccuracy?.p10],
  ['local_eval_global_accuracy_p10', (r) => r.metrics.localEvaluation?.spread?.globalAccuracy.p10],
  ['local_eval_personal_better_share', (r) => r.metrics.localEvaluation?.spread?.personalBetterShare],
  ['error', (r) => r.error],
];

/**
 * The rounds as CSV text, a header line first.
 * @param {readonly DashboardRound[]} rounds
 */
export function roundsCsv(rounds) {
  const rows = rounds.map((round) => COLUMNS.map(([, read]) => read(round) ?? ''));
  return stringify(rows, { header: true, columns: COLUMNS.map(([header]) => header) });
}

export function initRoundsExport() {
  byId('rounds-csv').addEventListener('click', () => {
    exportRounds().catch(reportFailure);
  });
}

/** Every round, newest first, page by page; null (after telling the operator) when a page fails. */
async function fetchAllRounds() {
  /** @type {DashboardRound[]} */
  const rounds = [];
  for (;;) {
    const { ok, body } = await api(`/api/rounds?limit=${PAGE}&offset=${rounds.length}`);
    if (!ok || !Array.isArray(body)) {
      flash(byId('rounds-msg'), ok ? 'unexpected answer' : errorMessage(body), 'error');
      return null;
    }
    // The coordinator's own RoundRecord[]: DashboardRound is a structural subset of it.
    const page = /** @type {DashboardRound[]} */ (/** @type {unknown} */ (body));
    rounds.push(...page);
    if (page.length < PAGE) return rounds;
  }
}

async function exportRounds() {
  const button = /** @type {HTMLButtonElement} */ (byId('rounds-csv'));
  button.disabled = true;
  try {
    const rounds = await fetchAllRounds();
    if (!rounds) return;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([roundsCsv(rounds)], { type: 'text/csv;charset=utf-8' }));
    link.download = `flock-rounds-${new Date().toISOString().slice(0, 19).replaceAll(':', '')}.csv`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    flash(byId('rounds-msg'), `${rounds.length} rounds exported`, 'ok');
  } finally {
    button.disabled = false;
  }
}
