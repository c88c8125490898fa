/** The pure parts of serving: deviation measures, dynamic batching's decisions, and the V2 codec. */
import { describe, expect, it } from 'vitest';
import { jensenShannonDivergence, populationStabilityIndex } from '../../src/serving/deviation.js';
import { DynamicBatcher, QueueFullError, type BatchRunner } from '../../src/serving/dynamic-batcher.js';
import { decodeInferBody, InferHeaderCache, InferRequestError, prepareInput } from '../../src/serving/infer-codec.js';
import { argmaxRows } from '../../src/serving/version-stats.js';

describe('deviation', () => {
  it('is zero for the same distribution and grows with the shift', () => {
    expect(populationStabilityIndex([10, 20, 30], [20, 40, 60])).toBeCloseTo(0, 10);
    expect(jensenShannonDivergence([10, 20, 30], [1, 2, 3])).toBeCloseTo(0, 10);
    const small = populationStabilityIndex([100, 100, 100], [110, 100, 90]);
    const large = populationStabilityIndex([100, 100, 100], [250, 30, 20]);
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThan(0.1);
    expect(large).toBeGreaterThan(0.25);
  });

  it('stays finite when a class is never predicted, and JS is 1 for disjoint supports', () => {
    expect(Number.isFinite(populationStabilityIndex([50, 50, 0], [0, 0, 100]))).toBe(true);
    expect(jensenShannonDivergence([1, 0], [0, 1])).toBeCloseTo(1, 10);
  });

  it('takes the argmax and top value of each row', () => {
    const { classes, confidences } = argmaxRows(Float32Array.from([0.1, 0.7, 0.2, 0.5, 0.2, 0.3]), 2);
    expect(Array.from(classes)).toEqual([1, 0]);
    expect(Array.from(confidences)).toEqual([Math.fround(0.7), 0.5]);
  });
});

/** A runner with `workers` slots whose batches finish when the test says so. */
function manualRunner(workers: number) {
  const running: { version: number; rows: number; input: Float32Array; finish: () => void }[] = [];
  let idle: () => void = () => undefined;
  const runner: BatchRunner = {
    idleWorkers: () => workers - running.length,
    setIdleListener: (listener) => (idle = listener),
    run: (version, rows, input) =>
      new Promise((resolve) => {
        const batch = {
          version,
          rows,
          input,
          finish: () => {
            running.splice(running.indexOf(batch), 1);
            // Output: each row's first value, times 10.
            resolve([Float32Array.from({ length: rows }, (_, r) => input[r * 2]! * 10)]);
            idle();
          },
        };
        running.push(batch);
      }),
  };
  return { runner, running };
}

const rows = (...values: number[]) => Float32Array.from(values.flatMap((v) => [v, 0]));
/** The end of this turn of the event loop (the batcher's setImmediate has run). */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('dynamic batcher', () => {
  it('fills batches while the worker is busy, up to maxBatchSize rows, and hands each request its rows', async () => {
    const { runner, running } = manualRunner(1);
    const batcher = new DynamicBatcher(runner, { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueue: 100 });
    const first = batcher.submit(1, 1, rows(1));
    // Not full: it waits for the end of this turn, then goes alone.
    expect(running).toHaveLength(0);
    await nextTurn();
    expect(running).toHaveLength(1);
    const queued = [batcher.submit(1, 2, rows(2, 3)), batcher.submit(1, 1, rows(4)), batcher.submit(1, 2, rows(5, 6))];
    expect(batcher.queued).toBe(3);
    running[0]!.finish();
    expect(await first).toEqual({ outputs: [Float32Array.from([10])], batchSize: 1 });
    // 2 + 1 rows fit in 4; the next request's 2 would not.
    expect(running[0]!.rows).toBe(3);
    running[0]!.finish();
    expect(await queued[0]).toEqual({ outputs: [Float32Array.from([20, 30])], batchSize: 3 });
    expect(await queued[1]).toEqual({ outputs: [Float32Array.from([40])], batchSize: 3 });
    await nextTurn();
    running[0]!.finish();
    expect(await queued[2]).toEqual({ outputs: [Float32Array.from([50, 60])], batchSize: 2 });
  });

  it('waits up to maxQueueDelayMs for a batch to fill while a worker is free', async () => {
    const { runner, running } = manualRunner(1);
    const batcher = new DynamicBatcher(runner, { maxBatchSize: 8, maxQueueDelayMs: 30, maxQueue: 100 });
    const a = batcher.submit(1, 1, rows(1));
    const b = batcher.submit(1, 1, rows(2));
    expect(running).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(running.map((batch) => batch.rows)).toEqual([2]);
    running[0]!.finish();
    expect((await a).batchSize).toBe(2);
    expect((await b).outputs).toEqual([Float32Array.from([20])]);
  });

  it('sends the requests of one event-loop turn together while a worker is free; batching off sends each alone', async () => {
    const { runner, running } = manualRunner(1);
    const batcher = new DynamicBatcher(runner, { maxBatchSize: 8, maxQueueDelayMs: 0, maxQueue: 100 });
    const same = [batcher.submit(1, 1, rows(1)), batcher.submit(1, 2, rows(2, 3))];
    await nextTurn();
    expect(running.map((batch) => batch.rows)).toEqual([3]);
    running[0]!.finish();
    expect((await Promise.all(same)).map((result) => result.outputs)).toEqual([[Float32Array.from([10])], [Float32Array.from([20, 30])]]);

    const off = manualRunner(1);
    const unbatched = new DynamicBatcher(off.runner, { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueue: 100 });
    const alone = [unbatched.submit(1, 1, rows(1)), unbatched.submit(1, 1, rows(2))];
    // Full at one row: sent at once, the next waits for the worker.
    expect(off.running.map((batch) => batch.rows)).toEqual([1]);
    off.running[0]!.finish();
    expect(off.running.map((batch) => batch.rows)).toEqual([1]);
    off.running[0]!.finish();
    expect((await Promise.all(alone)).map((result) => result.batchSize)).toEqual([1, 1]);
  });

  it('never mixes versions in a batch, and refuses past maxQueue', async () => {
    const { runner, running } = manualRunner(1);
    const batcher = new DynamicBatcher(runner, { maxBatchSize: 8, maxQueueDelayMs: 0, maxQueue: 2 });
    const busy = batcher.submit(1, 1, rows(1));
    await nextTurn();
    const old = batcher.submit(1, 1, rows(2));
    const next = batcher.submit(2, 1, rows(3));
    await expect(batcher.submit(2, 1, rows(4))).rejects.toBeInstanceOf(QueueFullError);
    running[0]!.finish();
    await busy;
    expect(running.map((batch) => [batch.version, batch.rows])).toEqual([[1, 1]]);
    running[0]!.finish();
    await old;
    await nextTurn();
    expect(running.map((batch) => [batch.version, batch.rows])).toEqual([[2, 1]]);
    running[0]!.finish();
    expect((await next).outputs).toEqual([Float32Array.from([30])]);
  });
});

describe('V2 codec', () => {
  const signature = { inputs: [{ name: 'input', shape: [-1, 2] }], outputs: [{ name: 'output', shape: [-1, 3] }] };

  it('reads nested and flat JSON data, and the binary extension', () => {
    const nested = prepareInput(
      decodeInferBody(
        {
          inputs: [
            {
              name: 'input',
              shape: [2, 2],
              datatype: 'FP32',
              data: [
                [1, 2],
                [3, 4],
              ],
            },
          ],
        },
        undefined,
      ),
      signature,
    );
    expect(nested).toEqual({ rows: 2, shape: [2, 2], input: Float32Array.from([1, 2, 3, 4]) });
    const values = Float32Array.from([1, 2, 3, 4]);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [2, 2], datatype: 'FP32', parameters: { binary_data_size: 16 } }] }));
    const binary = prepareInput(decodeInferBody(Buffer.concat([header, Buffer.from(values.buffer)]), header.byteLength), signature);
    expect(binary).toEqual(nested);
  });

  it('refuses what does not fit: too deep, trailing bytes, non-finite binary values, bad header length', () => {
    const bad = (body: unknown, length?: number) => () => prepareInput(decodeInferBody(body, length), signature);
    expect(bad({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [[[1, 2]]] }] })).toThrow(/nested deeper/);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] }));
    expect(bad(Buffer.concat([header, Buffer.alloc(12)]), header.byteLength)).toThrow(/4 bytes after the last binary input/);
    expect(bad(Buffer.concat([header, Buffer.from(Float32Array.from([NaN, 1]).buffer)]), header.byteLength)).toThrow(/not a finite number/);
    // Every position, in the four-way pass and in its tail (10 values), is checked.
    const rows = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [5, 2], datatype: 'FP32', parameters: { binary_data_size: 40 } }] }));
    for (let at = 0; at < 10; at++) {
      for (const value of [NaN, Infinity, -Infinity]) {
        const values = new Float32Array(10).fill(0.5);
        values[at] = value;
        expect(bad(Buffer.concat([rows, Buffer.from(values.buffer)]), rows.byteLength), `${value} at ${at}`).toThrow(`value ${at} is not a finite number`);
      }
    }
    expect(bad(header, header.byteLength + 10)).toThrow(InferRequestError);
    expect(bad({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] })).toThrow(/binary tensor extension/);
    for (const data of [5, 'x', { 0: 1, 1: 2 }, null]) {
      expect(bad({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data }] }), JSON.stringify(data)).toThrow(/inputs\.0\.data.*expected an array/);
    }
  });
});

describe('binary headers, checked once per distinct header', () => {
  const header = (id: string) => JSON.stringify({ id, inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] });
  const body = (text: string) => Buffer.concat([Buffer.from(text), Buffer.alloc(8)]);

  it('answers a repeated header with the same frozen request, and decodes as without the cache', () => {
    const cache = new InferHeaderCache();
    const text = header('a');
    const first = decodeInferBody(body(text), text.length, cache);
    const second = decodeInferBody(body(text), text.length, cache);
    expect(second.request).toBe(first.request);
    expect(Object.isFrozen(first.request.inputs[0]!.shape)).toBe(true);
    expect(first).toEqual(decodeInferBody(body(text), text.length));
  });

  it('refuses bad headers every time (nothing is kept of them), and stays bounded', () => {
    const cache = new InferHeaderCache(2, 200);
    for (let i = 0; i < 2; i++) expect(() => cache.parse('{"inputs": [')).toThrow(InferRequestError);
    expect(() => cache.parse('{"inputs": []}')).toThrow(/invalid inference request/);
    const a = cache.parse(header('a'));
    cache.parse(header('b'));
    // Full: the third distinct header empties it.
    cache.parse(header('c'));
    expect(cache.parse(header('a'))).not.toBe(a);
    expect(cache.parse(header('a'))).toEqual(a);
    // Longer than maxLength: checked, not kept.
    const long = header('x'.repeat(200));
    expect(cache.parse(long)).not.toBe(cache.parse(long));
  });
});
