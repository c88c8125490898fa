/**
 * Runs one precompute job from its checkpoint to the end of its input: reads lines from the
 * checkpoint's byte offset, parses them (parse-row.ts), predicts the valid rows in batches on the
 * inference workers (a few batches in flight, so the workers stay busy while the event loop writes),
 * and commits each batch's rows together with the checkpoint just past its last line, in order.
 * A crash loses only uncommitted batches, which the next run predicts again; a row is never stored
 * twice (the transaction, and the table's primary key behind it).
 */
import type { PrecomputeJob, PrecomputeRejection } from '../contract/index.js';
import { argmaxRows } from '../serving/version-stats.js';
import { CheckpointMovedError, type PredictionRow, type PredictionStore, type StoredJob } from '../storage/predictions.js';
import { advanceJob } from './job-progress.js';
import { readLines, type SourceLine } from './line-reader.js';
import { csvRowParser, ndjsonRowParser, parseCsvHeader, type RowParser } from './parse-row.js';

export interface JobRunnerDeps {
  store: PredictionStore;
  /** Values per input row of a version (loading it into the workers). */
  inputWidth(version: number): Promise<number>;
  /** Runs `rows` rows of a version on the inference workers; resolves its (first) output, rows x width. */
  predict(version: number, rows: number, input: Float32Array): Promise<Float32Array>;
  batchRows: number;
  maxLineBytes: number;
  /** Batches predicted ahead of the one being written. */
  window: number;
  /** True once the runner must stop (shutdown): it stops between batches, leaving the job to resume. */
  stopping(): boolean;
}

/** How a run ended: the job's last state, or `superseded` when another runner moved its checkpoint. */
export type RunOutcome = { kind: 'finished'; job: PrecomputeJob } | { kind: 'stopped'; job: PrecomputeJob } | { kind: 'superseded' };

interface ParsedBatch {
  keys: string[];
  inputs: Float32Array[];
  rejections: PrecomputeRejection[];
  /** Line of each row, for conflicts found at the write. */
  lines: number[];
  /** Lines of the input before the batch's first. */
  startLine: number;
  end: number;
  lineNumber: number;
}

interface InFlight {
  batch: ParsedBatch;
  output: Promise<Float32Array | null>;
}

/** Lines per batch at most, rows or not (a run of refused lines still advances the checkpoint). */
const LINES_PER_BATCH_FACTOR = 4;

async function firstLine(path: string, maxLineBytes: number): Promise<SourceLine | null> {
  for await (const line of readLines(path, { start: 0, linesBefore: 0, maxLineBytes })) return line;
  return null;
}

async function rowParser(stored: StoredJob, width: number, maxLineBytes: number): Promise<RowParser> {
  const { job, sourcePath } = stored;
  if (job.format === 'ndjson') return ndjsonRowParser(job.keyField, width);
  const header = await firstLine(sourcePath, maxLineBytes);
  if (!header || header.text === null) throw new Error('the CSV input has no header line (or it is too long)');
  return csvRowParser(parseCsvHeader(header.text, job.keyField, width), job.keyField);
}

export async function runJob(stored: StoredJob, deps: JobRunnerDeps): Promise<RunOutcome> {
  let job = stored.job;
  if (job.status !== 'running') {
    const running: PrecomputeJob = { ...job, status: 'running', error: null, updatedAt: new Date().toISOString() };
    if (!(await deps.store.updateJob(running, job.bytesDone))) return { kind: 'superseded' };
    job = running;
  }
  let parse: RowParser;
  try {
    const width = await deps.inputWidth(job.modelVersion);
    parse = await rowParser(stored, width, deps.maxLineBytes);
  } catch (error) {
    return finish(job, deps, error instanceof Error ? error.message : String(error));
  }

  const pending: InFlight[] = [];
  let lastCommitAt = performance.now();
  const write = async (): Promise<void> => {
    const { batch, output } = pending.shift()!;
    const predicted = await output;
    const rows = predicted === null ? [] : toRows(batch, predicted);
    const lineOf = new Map(batch.keys.map((key, i) => [key, batch.lines[i]!]));
    const now = performance.now();
    const before = job;
    job = await deps.store.commitBatch(before, before.bytesDone, rows, (conflicts) => {
      const refused: PrecomputeRejection[] = conflicts.map(({ key, ownJob }) => ({
        line: lineOf.get(key)!,
        reason: ownJob ? 'duplicate_key' : 'already_stored',
        message: ownJob ? `key "${key}" appeared on an earlier line` : `key "${key}" is already stored for version ${before.modelVersion}`,
      }));
      return advanceJob(before, {
        bytesDone: batch.end,
        linesDone: batch.lineNumber,
        stored: rows.length - conflicts.length,
        rejections: [...batch.rejections, ...refused].sort((a, b) => a.line - b.line),
        activeMs: now - lastCommitAt,
        at: new Date().toISOString(),
      });
    });
    lastCommitAt = now;
  };
  const submit = async (batch: ParsedBatch): Promise<void> => {
    const rows = batch.inputs.length;
    const output = rows === 0 ? Promise.resolve(null) : deps.predict(job.modelVersion, rows, concat(batch.inputs));
    // Awaited in order by write(); until then a failure must not count as unhandled.
    output.catch(() => undefined);
    pending.push({ batch, output });
    if (pending.length > deps.window) await write();
  };

  try {
    let batch = emptyBatch(job.linesDone);
    const seen = new Set<string>();
    for await (const line of readLines(stored.sourcePath, { start: job.bytesDone, linesBefore: job.linesDone, maxLineBytes: deps.maxLineBytes })) {
      if (deps.stopping()) return { kind: 'stopped', job };
      batch.end = line.end;
      batch.lineNumber = line.number;
      const isHeader = job.format === 'csv' && line.number === 1;
      if (line.text === null) batch.rejections.push({ line: line.number, reason: 'line_too_long', message: `longer than ${deps.maxLineBytes} bytes` });
      else if (!isHeader && line.text.trim() !== '') {
        const parsed = parse(line.text);
        if (!parsed.ok) batch.rejections.push({ line: line.number, reason: parsed.reason, message: parsed.message });
        else if (seen.has(parsed.key))
          batch.rejections.push({ line: line.number, reason: 'duplicate_key', message: `key "${parsed.key}" appeared on an earlier line` });
        else {
          seen.add(parsed.key);
          batch.keys.push(parsed.key);
          batch.inputs.push(parsed.input);
          batch.lines.push(line.number);
        }
      }
      if (batch.inputs.length >= deps.batchRows || line.number - batch.startLine >= deps.batchRows * LINES_PER_BATCH_FACTOR) {
        await submit(batch);
        seen.clear();
        batch = emptyBatch(line.number);
      }
    }
    if (batch.end > 0) await submit(batch);
    while (pending.length > 0) {
      if (deps.stopping()) return { kind: 'stopped', job };
      await write();
    }
  } catch (error) {
    if (error instanceof CheckpointMovedError) return { kind: 'superseded' };
    if (deps.stopping()) return { kind: 'stopped', job };
    return finish(job, deps, error instanceof Error ? error.message : String(error));
  }
  return finish(job, deps, null);
}

function emptyBatch(startLine: number): ParsedBatch {
  return { keys: [], inputs: [], rejections: [], lines: [], startLine, end: 0, lineNumber: 0 };
}

async function finish(job: PrecomputeJob, deps: JobRunnerDeps, error: string | null): Promise<RunOutcome> {
  const at = new Date().toISOString();
  const done: PrecomputeJob = { ...job, status: error === null ? 'completed' : 'failed', error, updatedAt: at, finishedAt: at };
  if (!(await deps.store.updateJob(done, job.bytesDone))) return { kind: 'superseded' };
  return { kind: 'finished', job: done };
}

function concat(inputs: Float32Array[]): Float32Array {
  const width = inputs[0]!.length;
  const all = new Float32Array(inputs.length * width);
  inputs.forEach((row, i) => all.set(row, i * width));
  return all;
}

function toRows(batch: ParsedBatch, output: Float32Array): PredictionRow[] {
  const count = batch.keys.length;
  const width = output.length / count;
  const { classes, confidences } = argmaxRows(output, count);
  return batch.keys.map((key, i) => {
    const confidence = confidences[i]!;
    return {
      key,
      topClass: classes[i]!,
      confidence: Number.isFinite(confidence) ? confidence : 0,
      output: new Uint8Array(output.buffer, output.byteOffset + i * width * 4, width * 4),
    };
  });
}
