import { describe, expect, it } from 'vitest';
import { ComposedStrategy, type AggregateTransform } from '../../src/aggregation/pipeline.js';
import { DirectUpdate } from '../../src/aggregation/server-optimizers.js';
import { WeightedMeanAccumulator } from '../../src/aggregation/fedavg.js';
import {
  createStrategy,
  DEFAULT_STRATEGY,
  describeStrategy,
  effectiveStrategyOptions,
  getStrategy,
  minimumUpdates,
  parseStrategyOptions,
  STRATEGY_NAMES,
  StrategyConfigError,
  strategyOptionsSchema,
} from '../../src/aggregation/strategies.js';
import type { ClientUpdate } from '../../src/aggregation/strategy.js';
import { randomVector, runRound, seededRandom, update, vec } from './helpers.js';

const plan = { epochs: 2, batchSize: 10, learningRate: 0.05 };

describe('strategy registry', () => {
  it('knows every strategy; getStrategy(name) is createStrategy(name)', () => {
    expect(STRATEGY_NAMES).toEqual(['fedavg', 'fedavgm', 'fedprox', 'fedadagrad', 'fedadam', 'fedyogi', 'median', 'trimmed-mean', 'krum', 'multi-krum']);
    expect(DEFAULT_STRATEGY).toBe('fedavg');
    for (const name of STRATEGY_NAMES) {
      expect(createStrategy(name).name).toBe(name);
      expect(getStrategy(name).name).toBe(name);
      expect(describeStrategy(name).options).toContain('clipNorm');
    }
  });

  it('unknown names throw a StrategyConfigError listing the known ones', () => {
    expect(() => createStrategy('fedsgd')).toThrow(StrategyConfigError);
    expect(() => createStrategy('fedsgd')).toThrow(
      /unknown strategy "fedsgd"; known: fedavg, fedavgm, fedprox, fedadagrad, fedadam, fedyogi, median, trimmed-mean, krum, multi-krum/,
    );
    expect(() => createStrategy('toString')).toThrow(/unknown strategy/);
  });

  it('fedprox sets μ in the plan: option over plan over default 1; others leave the plan alone', () => {
    expect(createStrategy('fedprox').configurePlan(plan)).toEqual({ ...plan, proximalMu: 1 });
    expect(createStrategy('fedprox', { proximalMu: 0.01 }).configurePlan(plan)).toEqual({ ...plan, proximalMu: 0.01 });
    expect(createStrategy('fedprox').configurePlan({ ...plan, proximalMu: 0.5 })).toEqual({ ...plan, proximalMu: 0.5 });
    expect(createStrategy('fedprox', { proximalMu: 0.1 }).configurePlan({ ...plan, proximalMu: 0.5 })).toEqual({ ...plan, proximalMu: 0.1 });
    const original = { ...plan };
    createStrategy('fedprox').configurePlan(original);
    expect(original).toEqual(plan); // not mutated
    for (const name of STRATEGY_NAMES.filter((n) => n !== 'fedprox')) expect(createStrategy(name).configurePlan(plan)).toBe(plan);
    // ...and aggregates exactly like fedavg.
    const updates = [update(2, 1, 2), update(6, -1, 0)];
    expect(runRound(createStrategy('fedprox'), vec(0, 0), updates)).toEqual(runRound(createStrategy('fedavg'), vec(0, 0), updates));
  });

  it('reports effective options (defaults under the given ones)', () => {
    expect(effectiveStrategyOptions('fedadam')).toEqual({ serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    expect(effectiveStrategyOptions('fedadagrad', { tau: 0.01 })).toEqual({ serverLearningRate: 0.1, beta1: 0.9, tau: 0.01 });
    expect(effectiveStrategyOptions('fedavgm')).toEqual({ serverLearningRate: 1, serverMomentum: 0.9 });
    expect(effectiveStrategyOptions('krum', { clipNorm: 5 })).toEqual({ byzantineClients: 1, maxBufferedUpdates: 1000, clipNorm: 5 });
    expect(effectiveStrategyOptions('fedavg')).toEqual({});
  });

  it('says how many updates a round needs at least (to validate minClients up front)', () => {
    expect(minimumUpdates('fedavg')).toBe(1);
    expect(minimumUpdates('median')).toBe(1);
    expect(minimumUpdates('krum')).toBe(5); // f = 1: 2f + 3
    expect(minimumUpdates('multi-krum', { byzantineClients: 3 })).toBe(9);
    expect(minimumUpdates('trimmed-mean')).toBe(5); // floor(0.2 · 5) = 1
    expect(minimumUpdates('trimmed-mean', { trimFraction: 0.1 })).toBe(10);
    expect(minimumUpdates('trimmed-mean', { trimFraction: 0.3 })).toBe(4); // floor(1.2) = 1
    expect(() => minimumUpdates('nope')).toThrow(/unknown strategy/);
  });
});

describe('strategy options validation', () => {
  const refuse = (name: string, options: unknown, message: RegExp) => {
    expect(() => parseStrategyOptions(name, options)).toThrow(StrategyConfigError);
    expect(() => parseStrategyOptions(name, options)).toThrow(message);
    // createStrategy validates too, whatever the static type says.
    expect(() => createStrategy(name, options as never)).toThrow(message);
  };

  it('refuses unknown keys, wrong types and out-of-bound values', () => {
    refuse('fedavgm', { lr: 1 }, /Unrecognized key.*"lr"/);
    refuse('fedavgm', { serverMomentum: 1 }, /serverMomentum/);
    refuse('fedavgm', { serverLearningRate: 0 }, /serverLearningRate/);
    refuse('fedavgm', { serverLearningRate: '1' }, /serverLearningRate/);
    refuse('fedadam', { beta2: -0.1 }, /beta2/);
    refuse('fedadam', { tau: 0 }, /tau/);
    refuse('trimmed-mean', { trimFraction: 0.5 }, /trimFraction/);
    refuse('krum', { byzantineClients: 1.5 }, /byzantineClients/);
    refuse('krum', { byzantineClients: -1 }, /byzantineClients/);
    refuse('multi-krum', { multiKrumSelect: 0 }, /multiKrumSelect/);
    refuse('fedavg', { clipNorm: -1 }, /clipNorm/);
    refuse('fedavg', { clipNorm: Infinity }, /clipNorm/);
    refuse('fedavg', { clipNorm: NaN }, /clipNorm/);
    refuse('fedprox', { proximalMu: 101 }, /proximalMu/);
    refuse('median', { maxBufferedUpdates: 0 }, /maxBufferedUpdates/);
    refuse('fedavg', 'fast', /invalid options for strategy "fedavg"/);
  });

  it('refuses options that do not apply to the chosen strategy, listing the ones that do', () => {
    refuse('fedavg', { serverMomentum: 0.9 }, /option "serverMomentum" does not apply to strategy "fedavg"; it accepts: clipNorm/);
    refuse('fedadagrad', { beta2: 0.99 }, /"beta2" does not apply to strategy "fedadagrad"; it accepts: serverLearningRate, beta1, tau, clipNorm/);
    refuse('median', { trimFraction: 0.1, byzantineClients: 1 }, /options "trimFraction", "byzantineClients" do not apply to strategy "median"/);
    refuse('fedadam', { maxBufferedUpdates: 10 }, /"maxBufferedUpdates" does not apply to strategy "fedadam"/);
    refuse('krum', { multiKrumSelect: 3 }, /"multiKrumSelect" does not apply to strategy "krum"/);
    // undefined values count as absent
    expect(parseStrategyOptions('fedavg', { serverMomentum: undefined })).toEqual({ serverMomentum: undefined });
  });

  it('refuses combinations that can never aggregate', () => {
    refuse(
      'krum',
      { byzantineClients: 10, maxBufferedUpdates: 20 },
      /byzantineClients = 10 needs at least 2f \+ 3 = 23 updates, more than maxBufferedUpdates = 20/,
    );
    refuse('krum', { maxBufferedUpdates: 4 }, /byzantineClients = 1 needs at least 2f \+ 3 = 5/);
    refuse('multi-krum', { byzantineClients: 2, multiKrumSelect: 9, maxBufferedUpdates: 10 }, /multiKrumSelect = 9 can never be reached/);
    refuse('trimmed-mean', { trimFraction: 0.1, maxBufferedUpdates: 9 }, /trims nothing/);
    expect(() => createStrategy('multi-krum', { byzantineClients: 2, multiKrumSelect: 8, maxBufferedUpdates: 10 })).not.toThrow();
  });

  it('exports a strict zod schema', () => {
    expect(strategyOptionsSchema.safeParse({ beta1: 0.5, clipNorm: 3 }).success).toBe(true);
    expect(strategyOptionsSchema.safeParse({ beta3: 0.5 }).success).toBe(false);
    expect(strategyOptionsSchema.parse({})).toEqual({});
  });
});

describe('streaming strategies keep O(1) updates', () => {
  const streaming = ['fedavg', 'fedavgm', 'fedprox', 'fedadagrad', 'fedadam', 'fedyogi'] as const;

  it('1000 updates through one reused, overwritten buffer give the result of 1000 distinct updates', () => {
    const size = 64;
    const random = seededRandom(1234);
    const global = randomVector(random, size);
    const updates: ClientUpdate[] = Array.from({ length: 1000 }, (_, k) => ({ delta: randomVector(random, size, 0.2), numExamples: 1 + (k % 17) }));
    const total = updates.reduce((sum, u) => sum + u.numExamples, 0);
    const mean = Array.from({ length: size }, (_, i) => updates.reduce((sum, u) => sum + u.numExamples * u.delta[i]!, 0) / total);
    for (const name of streaming) {
      for (const options of [{}, { clipNorm: 1 }, { clipNorm: 1e9 }]) {
        const aggregator = createStrategy(name, options).begin({ globalWeights: global, serverState: null });
        const shared = new Float32Array(size);
        for (const u of updates) {
          shared.set(u.delta);
          aggregator.add({ delta: shared, numExamples: u.numExamples });
          shared.fill(1e6); // whatever kept a reference would now see garbage
        }
        const reused = aggregator.finish();
        const distinct = runRound(createStrategy(name, options), global, updates);
        expect([...reused.weights]).toEqual([...distinct.weights]);
        if (name === 'fedavg' && !('clipNorm' in options && options.clipNorm === 1)) {
          for (let i = 0; i < size; i++) expect(reused.weights[i]).toBeCloseTo(global[i]! + mean[i]!, 6);
        }
      }
    }
  });
});

describe('pipeline extension point', () => {
  it('runs aggregate transforms between aggregation and the server optimizer', () => {
    const doubling: AggregateTransform = {
      name: 'double',
      apply: (delta, info) => {
        expect(info.updates).toBe(2);
        return delta.map((v) => 2 * v);
      },
    };
    const strategy = new ComposedStrategy({
      name: 'test',
      createAggregator: (size) => new WeightedMeanAccumulator(size),
      optimizer: new DirectUpdate(),
      aggregateTransforms: [doubling],
    });
    // mean = (1·[1, 0] + 1·[3, 2]) / 2 = [2, 1]; doubled = [4, 2]
    const result = runRound(strategy, vec(1, 1), [update(1, 1, 0), update(1, 3, 2)]);
    expect([...result.weights]).toEqual([5, 3]);
    expect(result.updateNorm).toBeCloseTo(Math.hypot(4, 2), 12);
  });
});
