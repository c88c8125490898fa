/** Per-round results as CSV (RFC 4180 quoting by csv-stringify): one header line, one line per round. */
import { stringify } from 'csv-stringify/sync';
import type { RoundRow } from './report.js';

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
  'bytesUp',
  'bytesDown',
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

/** Fractions with 6 decimals, integers as they are, null as an empty field. */
export function roundsToCsv(rows: readonly RoundRow[]): string {
  return stringify(rows as RoundRow[], {
    header: true,
    columns: CSV_COLUMNS,
    record_delimiter: 'unix',
    cast: { number: (value) => (Number.isInteger(value) ? String(value) : value.toFixed(6)) },
  });
}
