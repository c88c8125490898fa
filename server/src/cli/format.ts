/**
 * Human-readable rendering for the `flock` CLI: tables (cli-table3, no colours so output can be
 * piped and grepped), durations, percentages, byte counts. Pure functions of the API's JSON.
 */
import Table from 'cli-table3';
import type { LocalEvaluationSummary, ModelVersionMeta, Quartiles, RoundDetails, RoundRecord, StatusResponse } from '../contract/index.js';

const DASH = '-';

/** No ANSI colours (output is piped and grepped); no separator lines between rows. */
const STYLE = { head: [], border: [], compact: true };

/** A plain table. */
export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head, style: STYLE });
  for (const row of rows) t.push(row.map(String));
  return t.toString();
}

/** A two-column key/value table. */
export function keyValueTable(rows: [string, string | number][]): string {
  const t = new Table({ style: STYLE });
  for (const [key, value] of rows) t.push({ [key]: String(value) });
  return t.toString();
}

/** 1234567 -> "1,234,567". */
export function formatInt(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  return Math.round(value).toLocaleString('en-US');
}

/** A number with up to `digits` significant decimals, without trailing noise. */
export function formatNumber(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return Number(value.toPrecision(digits)).toString();
}

/** A fraction in [0, 1] as a percentage: 0.97123 -> "97.12%". */
export function formatPercent(fraction: number | null | undefined, decimals = 2): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return DASH;
  return `${(fraction * 100).toFixed(decimals)}%`;
}

/** Milliseconds as "850 ms", "12.3 s", "3m 20s", "2h 05m", "3d 4h". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const totalSeconds = Math.round(ms / 1000);
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, '0')}m`;
  return `${minutes}m ${String(seconds).padStart(2, '0')}s`;
}

/** Bytes with binary units: 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** ISO timestamp -> "2026-05-04 12:03:07Z" (UTC, second precision). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** `{ a: 2, b: 1 }` -> "a 2, b 1"; empty -> "none". */
export function formatCounts(counts: Partial<Record<string, number>> | null | undefined): string {
  const entries = Object.entries(counts ?? {}).filter((entry): entry is [string, number] => typeof entry[1] === 'number' && entry[1] > 0);
  if (entries.length === 0) return 'none';
  return entries
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([key, count]) => `${key} ${count}`)
    .join(', ');
}

function sumCounts(counts: Partial<Record<string, number>> | null | undefined): number {
  return Object.values(counts ?? {}).reduce<number>((sum, n) => sum + (typeof n === 'number' ? n : 0), 0);
}

function metricNumber(meta: ModelVersionMeta, key: string): number | null {
  const value = meta.metrics?.[key];
  return typeof value === 'number' ? value : null;
}

/** "v7 (test accuracy 97.12%, loss 0.0934)". */
export function describeModel(meta: ModelVersionMeta): string {
  const accuracy = metricNumber(meta, 'testAccuracy');
  const loss = metricNumber(meta, 'testLoss');
  const parts: string[] = [meta.source];
  parts.push(accuracy === null ? 'test accuracy not measured' : `test accuracy ${formatPercent(accuracy)}`);
  if (loss !== null) parts.push(`test loss ${formatNumber(loss)}`);
  return `v${meta.version} (${parts.join(', ')})`;
}

/** Wall time of a round: its recorded duration, else ended - created, else (for a live one) now - created. */
export function roundDuration(round: RoundRecord, now = Date.now()): number | null {
  if (round.metrics?.durationMs !== null && round.metrics?.durationMs !== undefined) return round.metrics.durationMs;
  const created = Date.parse(round.createdAt);
  if (Number.isNaN(created)) return null;
  const ended = round.endedAt ? Date.parse(round.endedAt) : now;
  return Number.isNaN(ended) ? null : ended - created;
}

/** "7 -> 8", "7 -> -" */
function versions(round: RoundRecord): string {
  return `v${round.baseVersion} -> ${round.committedVersion === null ? DASH : `v${round.committedVersion}`}`;
}

export interface StatusView {
  url: string;
  status: StatusResponse;
  model: ModelVersionMeta | null;
  latestRound: RoundRecord | null;
}

export function renderStatus(view: StatusView): string {
  const { status, model, latestRound } = view;
  const rows: [string, string][] = [
    ['Coordinator', `${view.url} (${status.status}, up ${formatDuration(status.uptimeSeconds * 1000)})`],
    ['Model', model ? describeModel(model) : status.modelVersion === null ? 'none yet' : `v${status.modelVersion}`],
    ['Clients', `${formatInt(status.connectedClients)} connected, ${formatInt(status.eligibleClients)} eligible`],
  ];
  if (status.activeRound) {
    const live = latestRound && latestRound.id === status.activeRound ? latestRound : null;
    rows.push([
      'Active round',
      live
        ? `${live.id} (${live.status}, ${formatInt(live.metrics.reported)}/${formatInt(live.metrics.selected)} reported, ${formatInt(live.metrics.accepted)} accepted, running ${formatDuration(roundDuration(live))})`
        : status.activeRound,
    ]);
  } else {
    rows.push(['Active round', 'none']);
    if (latestRound) {
      const outcome =
        latestRound.status === 'committed'
          ? `committed v${latestRound.committedVersion}`
          : `${latestRound.status}${latestRound.error ? `: ${latestRound.error}` : ''}`;
      rows.push(['Last round', `${latestRound.id} (${outcome}, ended ${formatTime(latestRound.endedAt ?? latestRound.updatedAt)})`]);
    }
  }
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${key.padEnd(width)}  ${value}`).join('\n');
}

export function renderRoundList(rounds: RoundRecord[]): string {
  if (rounds.length === 0) return 'No rounds yet. Start one with `pnpm flock round start`.';
  return table(
    ['Round', 'Status', 'Model', 'Accepted/Selected', 'Rejected', 'Dropped', 'Examples', 'Train loss', 'Duration', 'Created'],
    rounds.map((round) => [
      round.id,
      round.status,
      versions(round),
      `${formatInt(round.metrics.accepted)}/${formatInt(round.metrics.selected)}`,
      formatInt(sumCounts(round.metrics.rejected)),
      formatInt(sumCounts(round.metrics.dropped)),
      formatInt(round.metrics.totalExamples),
      formatNumber(round.metrics.meanTrainLoss),
      formatDuration(roundDuration(round)),
      formatTime(round.createdAt),
    ]),
  );
}

type Rows = [string, string | number][];

function roundSummaryRows(round: RoundRecord | RoundDetails): Rows {
  const rows: Rows = [
    ['Round', round.id],
    ['Status', round.status],
    ['Base version', `v${round.baseVersion}`],
    ['Committed version', round.committedVersion === null ? DASH : `v${round.committedVersion}`],
  ];
  if (round.error) rows.push(['Error', round.error]);
  rows.push(['Created', formatTime(round.createdAt)], ['Ended', formatTime(round.endedAt)], ['Duration', formatDuration(roundDuration(round))]);
  if ('timeLeftMs' in round && round.timeLeftMs !== null) rows.push(['Time left', formatDuration(round.timeLeftMs)]);
  return rows;
}

function roundParamRows({ params }: RoundRecord): Rows {
  const plan = params.plan;
  return [
    ['Strategy', Object.keys(params.strategyOptions ?? {}).length > 0 ? `${params.strategy} ${JSON.stringify(params.strategyOptions)}` : params.strategy],
    ['Clients wanted', `min ${formatInt(params.minClients)}, target ${formatInt(params.targetClients)}, over-selection ${formatNumber(params.overSelection)}`],
    ['Timeouts', `selection ${formatDuration(params.selectionTimeoutMs)}, reporting deadline ${formatDuration(params.deadlineMs)}`],
    [
      'Training plan',
      `${formatInt(plan?.epochs)} epoch(s), batch ${formatInt(plan?.batchSize)}, learning rate ${formatNumber(plan?.learningRate)}` +
        (plan?.proximalMu ? `, proximal mu ${formatNumber(plan.proximalMu)}` : ''),
    ],
    ['Max update norm', params.maxUpdateNorm === null ? 'none' : formatNumber(params.maxUpdateNorm)],
    [
      'Secure aggregation',
      params.secureAggregation
        ? `on (clip norm ${formatNumber(params.secureAggregation.clipNorm)}, threshold ${formatNumber(params.secureAggregation.thresholdFraction)})`
        : 'off',
    ],
  ];
}

function roundMetricRows({ metrics }: RoundRecord): Rows {
  const rows: Rows = [
    ['Eligible at selection', formatInt(metrics.eligibleAtSelection)],
    ['Selected', formatInt(metrics.selected)],
    ['Reported', formatInt(metrics.reported)],
    ['Accepted', formatInt(metrics.accepted)],
    ['Rejected', `${formatInt(sumCounts(metrics.rejected))} (${formatCounts(metrics.rejected)})`],
    ['Dropped', `${formatInt(sumCounts(metrics.dropped))} (${formatCounts(metrics.dropped)})`],
    ['Examples', formatInt(metrics.totalExamples)],
    ['Mean train loss', formatNumber(metrics.meanTrainLoss)],
    ['Update norm', formatNumber(metrics.updateNorm)],
    ['Bytes received', formatBytes(metrics.bytesReceived)],
    ['Bytes up (accepted) / down', `${formatBytes(metrics.bytesUp)} / ${formatBytes(metrics.bytesDown)}`],
    ['Upload decode time (socket.io)', formatDuration(metrics.decodeMs)],
    ['Upload validation time', formatDuration(metrics.validationMs)],
    ['Aggregation time', formatDuration(metrics.aggregationMs)],
  ];
  if (metrics.localEvaluation) rows.push(...localEvaluationRows(metrics.localEvaluation));
  return rows;
}

function formatQuartiles(quartiles: Quartiles): string {
  return `median ${formatPercent(quartiles.median)} (IQR ${formatPercent(quartiles.q1)} to ${formatPercent(quartiles.q3)})`;
}

/** Devices' local tests: the means (capped weights), then the spread across devices where the coordinator kept it. */
function localEvaluationRows(evaluation: LocalEvaluationSummary): Rows {
  const rows: Rows = [
    [
      'Local evaluation',
      `${formatInt(evaluation.reports)} reports, ${formatInt(evaluation.numExamples)} examples: global ${formatPercent(evaluation.globalAccuracy)} (loss ${formatNumber(evaluation.globalLoss)})` +
        (evaluation.personalAccuracy === null
          ? ''
          : `, personalized ${formatPercent(evaluation.personalAccuracy)} (loss ${formatNumber(evaluation.personalLoss)})`) +
        `, ${formatInt(evaluation.adopted)} adopted`,
    ],
  ];
  const { spread } = evaluation;
  if (spread) {
    rows.push([
      'Across devices',
      `global ${formatQuartiles(spread.globalAccuracy)}` +
        (spread.personalAccuracy === null
          ? ''
          : `, personalized ${formatQuartiles(spread.personalAccuracy)}, better than global on ${formatPercent(spread.personalBetterShare, 0)} of ${formatInt(spread.personalReports)}`),
    ]);
  }
  return rows;
}

/** Details of one round: summary, parameters, metrics, then its transitions. */
export function renderRound(round: RoundRecord | RoundDetails): string {
  let out = keyValueTable([...roundSummaryRows(round), ...roundParamRows(round), ...roundMetricRows(round)]);
  if ('transitions' in round && Array.isArray(round.transitions) && round.transitions.length > 0) {
    out +=
      '\nTransitions\n' +
      table(
        ['At', 'From', 'To', 'Note'],
        round.transitions.map((t) => [formatTime(t.at), t.from ?? DASH, t.to, t.note ?? '']),
      );
  }
  return out;
}

export function renderModelList(models: ModelVersionMeta[]): string {
  if (models.length === 0) return 'No model versions yet.';
  return table(
    ['Version', 'Source', 'Parent', 'Round', 'Parameters', 'Test accuracy', 'Test loss', 'Created'],
    models.map((meta, index) => [
      index === 0 ? `v${meta.version} (current)` : `v${meta.version}`,
      meta.source,
      meta.parentVersion === null ? DASH : `v${meta.parentVersion}`,
      meta.roundId ?? DASH,
      formatInt(meta.numParameters),
      formatPercent(metricNumber(meta, 'testAccuracy')),
      formatNumber(metricNumber(meta, 'testLoss')),
      formatTime(meta.createdAt),
    ]),
  );
}

export function renderModel(meta: ModelVersionMeta): string {
  const rows: [string, string | number][] = [
    ['Version', `v${meta.version}`],
    ['Source', meta.source],
    ['Parent version', meta.parentVersion === null ? DASH : `v${meta.parentVersion}`],
    ['Round', meta.roundId ?? DASH],
    ['Parameters', formatInt(meta.numParameters)],
    ['Created', formatTime(meta.createdAt)],
  ];
  for (const [key, value] of Object.entries(meta.metrics ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    let text: string;
    if (typeof value === 'number') text = /accuracy/i.test(key) ? formatPercent(value) : formatNumber(value);
    else text = value ?? DASH;
    rows.push([`metrics.${key}`, text]);
  }
  return keyValueTable(rows);
}
