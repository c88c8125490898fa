import { describe, expect, it } from 'vitest';
import { PartialAggregate } from '../../src/aggregation/partial-aggregate.js';
import { createStrategy, describeStrategy, isSplittable, STRATEGY_NAMES } from '../../src/aggregation/strategies.js';

const LENGTH = 5;
const updates = [
  { delta: new Float32Array([0.5, -1, 2, 0, 3]), numExamples: 10 },
  { delta: new Float32Array([10, 10, -10, 10, 10]), numExamples: 30 }, // clipped when clipNorm is set
  { delta: new Float32Array([-0.25, 0.125, 0, 1, -1]), numExamples: 60 },
];

describe('splitting a strategy over coordinator processes', () => {
  it('is offered by exactly the streaming weighted-mean strategies', () => {
    for (const name of STRATEGY_NAMES) expect(isSplittable(name), name).toBe(!describeStrategy(name).buffersUpdates);
    expect(isSplittable('fedadam', { clipNorm: 2 })).toBe(true);
    expect(isSplittable('median', { clipNorm: 2 })).toBe(false);
  });

  it.each([
    ['fedavg', {}],
    ['fedavgm', {}],
    ['fedprox', { clipNorm: 1 }],
    ['fedadam', { clipNorm: 1 }],
    ['fedyogi', {}],
    ['fedadagrad', {}],
  ] as const)('%s %j: partials folded on two processes finish exactly like one process', (name, options) => {
    const context = { globalWeights: new Float32Array([1, 2, 3, 4, 5]), serverState: null };
    const single = createStrategy(name, options).begin(context);
    for (const update of updates) single.add(update);
    const expected = single.finish();

    const split = createStrategy(name, options).split!()!;
    const parts = [new PartialAggregate(LENGTH), new PartialAggregate(LENGTH)];
    updates.forEach((update, k) => {
      const prepared = split.prepare(update);
      parts[k === 2 ? 1 : 0]!.add(prepared.delta, prepared.numExamples, 0);
    });
    const combined = PartialAggregate.combine(parts, LENGTH);
    const result = split.finish(context, combined.mean(), combined.count);
    expect(Array.from(result.weights)).toEqual(Array.from(expected.weights));
    expect(result.serverState).toEqual(expected.serverState);
    expect(result.updateNorm).toBeCloseTo(expected.updateNorm, 12);
  });
});
