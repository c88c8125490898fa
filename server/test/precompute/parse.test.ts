import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { advanceJob, MAX_REJECTION_SAMPLES } from '../../src/precompute/job-progress.js';
import { readLines, type SourceLine } from '../../src/precompute/line-reader.js';
import { csvRowParser, ndjsonRowParser, parseCsvHeader, type ParsedRow } from '../../src/precompute/parse-row.js';
import type { PrecomputeJob } from '../../src/contract/index.js';

const dir = mkdtempSync(join(tmpdir(), 'flock-precompute-parse-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const reason = (row: ParsedRow): string => (row.ok ? 'ok' : row.reason);

describe('NDJSON rows', () => {
  const parse = ndjsonRowParser('id', 3);

  it('reads a key and a float32 row', () => {
    const row = parse('{"id": "a1", "input": [0.5, -1, 2]}');
    expect(row).toEqual({ ok: true, key: 'a1', input: Float32Array.from([0.5, -1, 2]) });
    expect(parse('{"id": 7, "input": [1, 2, 3]}')).toMatchObject({ ok: true, key: '7' });
    expect(ndjsonRowParser('uid', 1)('{"uid": "x", "input": [1]}')).toMatchObject({ ok: true, key: 'x' });
  });

  it('names the reason of every bad line', () => {
    expect(reason(parse('{"id": "a", "input": [1, 2]'))).toBe('malformed');
    expect(reason(parse('[1, 2, 3]'))).toBe('malformed');
    expect(reason(parse('{"id": "a"}'))).toBe('malformed');
    expect(reason(parse('{"input": [1, 2, 3]}'))).toBe('missing_key');
    expect(reason(parse('{"id": "", "input": [1, 2, 3]}'))).toBe('missing_key');
    expect(reason(parse('{"id": 1.5, "input": [1, 2, 3]}'))).toBe('invalid_key');
    expect(reason(parse('{"id": {"a": 1}, "input": [1, 2, 3]}'))).toBe('invalid_key');
    expect(reason(parse(`{"id": "${'k'.repeat(257)}", "input": [1, 2, 3]}`))).toBe('invalid_key');
    expect(reason(parse('{"id": "a\\u0000", "input": [1, 2, 3]}'))).toBe('invalid_key');
    expect(reason(parse('{"id": "a", "input": [1, 2]}'))).toBe('wrong_length');
    expect(reason(parse('{"id": "a", "input": [1, 2, 3, 4]}'))).toBe('wrong_length');
    expect(reason(parse('{"id": "a", "input": [1, "2", 3]}'))).toBe('not_numeric');
    expect(reason(parse('{"id": "a", "input": [1, null, 3]}'))).toBe('not_numeric');
    expect(reason(parse('{"id": "a", "input": [1, 1e999, 3]}'))).toBe('non_finite');
    const bad = parse('{"id": "a", "input": [1, 2]}');
    expect(bad.ok ? '' : bad.message).toBe('"input" has 2 values; the model takes 3');
  });
});

describe('CSV rows', () => {
  it('takes the key column from the header and the others as input, in order', () => {
    const header = parseCsvHeader('\uFEFFp0, id ,p1,p2', 'id', 3);
    expect(header).toEqual({ columns: 4, keyIndex: 1 });
    const parse = csvRowParser(header, 'id');
    expect(parse('0.5,"a,1",1,2')).toEqual({ ok: true, key: 'a,1', input: Float32Array.from([0.5, 1, 2]) });
    expect(reason(parse('1,b,2'))).toBe('wrong_length');
    expect(reason(parse('1,,2,3'))).toBe('missing_key');
    expect(reason(parse('1,b,x,3'))).toBe('not_numeric');
    expect(reason(parse('1,b,,3'))).toBe('not_numeric');
    expect(reason(parse('1,b,Infinity,3'))).toBe('non_finite');
    expect(reason(parse('1,b,NaN,3'))).toBe('non_finite');
    expect(reason(parse('1,"b,2,3'))).toBe('malformed');
  });

  it('fails a header without the key column or of the wrong width', () => {
    expect(() => parseCsvHeader('key,a,b,c', 'id', 3)).toThrow('no column "id"');
    expect(() => parseCsvHeader('id,a,b', 'id', 3)).toThrow('has 2 input columns; the model takes 3');
  });
});

async function lines(path: string, start = 0, linesBefore = 0, maxLineBytes = 1024, chunkBytes = 7): Promise<SourceLine[]> {
  const out: SourceLine[] = [];
  for await (const line of readLines(path, { start, linesBefore, maxLineBytes, chunkBytes })) out.push(line);
  return out;
}

describe('line reader', () => {
  it('gives each line its number and the offset past it, across chunks, CRLF and a last line without newline', async () => {
    const path = join(dir, 'a.txt');
    writeFileSync(path, 'first\r\nsecond line\n\nlast');
    expect(await lines(path)).toEqual([
      { text: 'first', number: 1, end: 7 },
      { text: 'second line', number: 2, end: 19 },
      { text: '', number: 3, end: 20 },
      { text: 'last', number: 4, end: 24 },
    ]);
    // Resuming at a line's end gives the same lines after it.
    expect(await lines(path, 19, 2)).toEqual([
      { text: '', number: 3, end: 20 },
      { text: 'last', number: 4, end: 24 },
    ]);
  });

  it('skips a line over the bound without holding it, and goes on', async () => {
    const path = join(dir, 'b.txt');
    writeFileSync(path, `ok\n${'x'.repeat(100)}\nafter\n${'y'.repeat(50)}`);
    expect(await lines(path, 0, 0, 20)).toEqual([
      { text: 'ok', number: 1, end: 3 },
      { text: null, number: 2, end: 104 },
      { text: 'after', number: 3, end: 110 },
      { text: null, number: 4, end: 160 },
    ]);
  });

  it('keeps multi-byte characters split across chunks whole', async () => {
    const path = join(dir, 'c.txt');
    writeFileSync(path, 'ééééé\n€€\n');
    expect((await lines(path, 0, 0, 1024, 3)).map((l) => l.text)).toEqual(['ééééé', '€€']);
  });
});

describe('job progress', () => {
  it('adds counts by reason, keeps the first rejections, and computes rows per second over running time', () => {
    const job = { rejected: {}, rejectionSamples: [], rowsStored: 0, rowsRejected: 0, activeMs: 0 } as unknown as PrecomputeJob;
    const rejections = Array.from({ length: 15 }, (_, i) => ({ line: i + 1, reason: 'wrong_length' as const, message: 'm' }));
    const once = advanceJob(job, { bytesDone: 100, linesDone: 500, stored: 485, rejections, activeMs: 250, at: 't1' });
    const twice = advanceJob(once, {
      bytesDone: 200,
      linesDone: 1000,
      stored: 490,
      rejections: [...rejections.slice(0, 9), { line: 999, reason: 'duplicate_key', message: 'd' }],
      activeMs: 250,
      at: 't2',
    });
    expect(twice).toMatchObject({
      bytesDone: 200,
      linesDone: 1000,
      rowsStored: 975,
      rowsRejected: 25,
      rejected: { wrong_length: 24, duplicate_key: 1 },
      activeMs: 500,
      rowsPerSecond: 2000,
      updatedAt: 't2',
    });
    expect(twice.rejectionSamples).toHaveLength(MAX_REJECTION_SAMPLES);
  });
});
