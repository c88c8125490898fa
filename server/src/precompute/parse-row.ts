/**
 * Pure parsing of precompute input lines: an NDJSON object (`{"id": "a1", "input": [numbers]}`) or a
 * CSV row (one record per line; the header names the key column, every other column is an input
 * value in header order) into a key and one float32 row, or the counted reason it is refused.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { MAX_PREDICTION_KEY_LENGTH, type PrecomputeRejectReason } from '../contract/index.js';

export type ParsedRow = { ok: true; key: string; input: Float32Array } | { ok: false; reason: PrecomputeRejectReason; message: string };

/** Parses one line of the input (its header, for CSV, already read). */
export type RowParser = (line: string) => ParsedRow;

const reject = (reason: PrecomputeRejectReason, message: string): ParsedRow => ({ ok: false, reason, message });

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A key from a string or a whole number; anything else is refused. */
export function keyOf(value: unknown, keyField: string): { key: string } | ParsedRow {
  if (value === undefined || value === null || value === '') return reject('missing_key', `no "${keyField}"`);
  let key: string;
  if (typeof value === 'string') key = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) key = String(value);
  else return reject('invalid_key', `"${keyField}" must be a string or a whole number`);
  if (key.length > MAX_PREDICTION_KEY_LENGTH) return reject('invalid_key', `"${keyField}" is longer than ${MAX_PREDICTION_KEY_LENGTH} characters`);
  if (CONTROL.test(key)) return reject('invalid_key', `"${keyField}" contains control characters`);
  return { key };
}

/** NDJSON: one JSON object per line with the key field and `input`, a flat array of `width` finite numbers. */
export function ndjsonRowParser(keyField: string, width: number): RowParser {
  return (line) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return reject('malformed', 'not valid JSON');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return reject('malformed', 'not a JSON object');
    const record = value as Record<string, unknown>;
    const key = keyOf(record[keyField], keyField);
    if (!('key' in key)) return key;
    const input = record.input;
    if (!Array.isArray(input)) return reject('malformed', '"input" must be an array of numbers');
    if (input.length !== width) return reject('wrong_length', `"input" has ${input.length} values; the model takes ${width}`);
    const row = new Float32Array(width);
    for (let i = 0; i < width; i++) {
      const v: unknown = input[i];
      if (typeof v !== 'number') return reject('not_numeric', `input[${i}] is not a number`);
      if (!Number.isFinite(v)) return reject('non_finite', `input[${i}] is not finite`);
      row[i] = v;
    }
    return { ok: true, key: key.key, input: row };
  };
}

/** The columns of a CSV input: where the key is; every other column is an input value. */
export interface CsvHeader {
  columns: number;
  keyIndex: number;
}

/** Reads the header line; throws (failing the job) when it lacks the key column or its width does not fit the model. */
export function parseCsvHeader(line: string, keyField: string, width: number): CsvHeader {
  let records: string[][];
  try {
    records = parseCsv(line, { bom: true, trim: true });
  } catch (error) {
    throw new Error(`the CSV header is not valid CSV (${(error as Error).message})`);
  }
  const names = records[0] ?? [];
  const keyIndex = names.indexOf(keyField);
  if (keyIndex < 0) throw new Error(`the CSV header has no column "${keyField}" (the key field)`);
  if (names.length - 1 !== width) throw new Error(`the CSV header has ${names.length - 1} input columns; the model takes ${width} values`);
  return { columns: names.length, keyIndex };
}

const NON_FINITE_TEXT = /^[+-]?(nan|inf|infinity)$/i;

/** CSV: one record per line (a quoted field may not span lines), as wide as the header. */
export function csvRowParser(header: CsvHeader, keyField: string): RowParser {
  const width = header.columns - 1;
  return (line) => {
    let records: string[][];
    try {
      records = parseCsv(line, { trim: true });
    } catch {
      return reject('malformed', 'not a valid CSV record');
    }
    const fields = records[0];
    if (records.length !== 1 || !fields) return reject('malformed', 'not one CSV record');
    if (fields.length !== header.columns) return reject('wrong_length', `${fields.length} columns; the header has ${header.columns}`);
    const key = keyOf(fields[header.keyIndex], keyField);
    if (!('key' in key)) return key;
    const row = new Float32Array(width);
    for (let c = 0, i = 0; c < fields.length; c++) {
      if (c === header.keyIndex) continue;
      const text = fields[c]!;
      const v = text === '' ? Number.NaN : Number(text);
      if (Number.isNaN(v) && !NON_FINITE_TEXT.test(text)) return reject('not_numeric', `column ${c + 1} is not a number`);
      if (!Number.isFinite(v)) return reject('non_finite', `column ${c + 1} is not finite`);
      row[i++] = v;
    }
    return { ok: true, key: key.key, input: row };
  };
}
