import { describe, expect, it } from 'vitest';
import { decodeServerState, encodeServerState } from '../../src/aggregation/server-state.js';
import { createStrategy } from '../../src/aggregation/strategies.js';
import type { ClientUpdate } from '../../src/aggregation/strategy.js';
import { randomVector, runRound, seededRandom, update, vec } from './helpers.js';

describe('fedavgm (server momentum)', () => {
  it('matches two hand-iterated rounds and persists the velocity', () => {
    const strategy = createStrategy('fedavgm', { serverLearningRate: 0.5, serverMomentum: 0.9 });
    // Round 1 from x = [1, 2]: Δ = (1·[1, 0] + 3·[3, 2]) / 4 = [2.5, 1.5]
    //   v = 0.9·0 + Δ = [2.5, 1.5];  x = [1, 2] + 0.5·v = [2.25, 2.75]
    const r1 = runRound(strategy, vec(1, 2), [update(1, 1, 0), update(3, 3, 2)]);
    expect([...r1.weights]).toEqual([2.25, 2.75]);
    expect([...decodeServerState(r1.serverState!, { tag: 'fedavgm', vectors: 1, length: 2 })[0]!]).toEqual([2.5, 1.5]);
    // updateNorm is the applied change: ‖0.5·[2.5, 1.5]‖ = √(1.5625 + 0.5625) = √2.125
    expect(r1.updateNorm).toBeCloseTo(Math.sqrt(2.125), 12);
    // Round 2, Δ = [1, -1]: v = 0.9·[2.5, 1.5] + [1, -1] = [3.25, 0.35];  x = [2.25 + 1.625, 2.75 + 0.175] = [3.875, 2.925]
    const r2 = runRound(strategy, r1.weights, [update(5, 1, -1)], r1.serverState);
    expect(r2.weights[0]).toBeCloseTo(3.875, 6);
    expect(r2.weights[1]).toBeCloseTo(2.925, 6);
    expect(r2.warnings).toEqual([]);
  });

  it('defaults to η = 1, β = 0.9', () => {
    // Round 1: v = Δ = [1]; x = 0 + 1. Round 2: v = 0.9 + 1 = 1.9; x = 1 + 1.9 = 2.9
    const strategy = createStrategy('fedavgm');
    const r1 = runRound(strategy, vec(0), [update(1, 1)]);
    const r2 = runRound(strategy, r1.weights, [update(1, 1)], r1.serverState);
    expect(r2.weights[0]).toBeCloseTo(2.9, 6);
  });
});

type Variant = 'fedadagrad' | 'fedadam' | 'fedyogi';

/** The update rules of Reddi et al. 2021 (Algorithm 2), written out per coordinate in float64. */
function referenceFedOpt(
  variant: Variant,
  x0: readonly number[],
  roundDeltas: readonly (readonly number[])[],
  { eta, beta1, beta2, tau }: { eta: number; beta1: number; beta2: number; tau: number },
): { x: number[]; m: number[]; v: number[] } {
  const x = [...x0];
  const m = x0.map(() => 0);
  const v = x0.map(() => tau * tau); // v_{-1} = τ²
  for (const delta of roundDeltas) {
    for (let i = 0; i < x.length; i++) {
      const d = delta[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * d;
      if (variant === 'fedadagrad') v[i] = v[i]! + d * d;
      else if (variant === 'fedadam') v[i] = beta2 * v[i]! + (1 - beta2) * d * d;
      else v[i] = v[i]! - (1 - beta2) * d * d * Math.sign(v[i]! - d * d);
      x[i] = x[i]! + (eta * m[i]!) / (Math.sqrt(v[i]!) + tau);
    }
  }
  return { x, m, v };
}

describe('FedOpt: fedadagrad, fedadam, fedyogi (Reddi et al. 2021)', () => {
  it('fedadagrad, one hand-computed round', () => {
    // η = 1, β1 = 0.5, τ = 0.75 (v_{-1} = τ² = 0.5625), Δ = [1, -1]
    //   m = 0.5·0 + 0.5·Δ = [0.5, -0.5];  v = 0.5625 + 1 = 1.5625, √v = 1.25
    //   x = 0 + 1·(±0.5) / (1.25 + 0.75) = [0.25, -0.25]
    const r = runRound(createStrategy('fedadagrad', { serverLearningRate: 1, beta1: 0.5, tau: 0.75 }), vec(0, 0), [update(2, 1, -1)]);
    expect([...r.weights]).toEqual([0.25, -0.25]);
    const [m, v] = decodeServerState(r.serverState!, { tag: 'fedadagrad', vectors: 2, length: 2 });
    expect([...m!]).toEqual([0.5, -0.5]);
    expect([...v!]).toEqual([1.5625, 1.5625]);
    expect(r.updateNorm).toBeCloseTo(Math.SQRT2 * 0.25, 7);
  });

  it('fedadam, one hand-computed round', () => {
    // η = 1, β1 = 0.5, β2 = 0.75, τ = 0.5 (v_{-1} = 0.25), Δ = [0.5, -0.5]
    //   m = 0.5·Δ = [0.25, -0.25];  v = 0.75·0.25 + 0.25·0.25 = 0.25, √v = 0.5
    //   x = [1, 1] + (±0.25) / (0.5 + 0.5) = [1.25, 0.75]
    const r = runRound(createStrategy('fedadam', { serverLearningRate: 1, beta1: 0.5, beta2: 0.75, tau: 0.5 }), vec(1, 1), [update(1, 0.5, -0.5)]);
    expect([...r.weights]).toEqual([1.25, 0.75]);
  });

  it('fedyogi, one hand-computed round (both signs of v - Δ²)', () => {
    // η = 1, β1 = 0.5, β2 = 0.75, τ = 0.5 (v_{-1} = 0.25), Δ = [0.75, 0]
    //   coordinate 0: v - Δ² = 0.25 - 0.5625 < 0 -> v = 0.25 + 0.25·0.5625 = 0.390625, √v = 0.625
    //                 m = 0.375; x = 0.375 / (0.625 + 0.5) = 1/3
    //   coordinate 1: v - Δ² = 0.25 > 0 -> v = 0.25 - 0.25·0 = 0.25; m = 0; x unchanged
    const r = runRound(createStrategy('fedyogi', { serverLearningRate: 1, beta1: 0.5, beta2: 0.75, tau: 0.5 }), vec(0, 2), [update(1, 0.75, 0)]);
    expect(r.weights[0]).toBeCloseTo(1 / 3, 7);
    expect(r.weights[1]).toBe(2);
    const [, v] = decodeServerState(r.serverState!, { tag: 'fedyogi', vectors: 2, length: 2 });
    expect([...v!]).toEqual([0.390625, 0.25]);
  });

  for (const variant of ['fedadagrad', 'fedadam', 'fedyogi'] as const) {
    it(`${variant}: two rounds through serverState bytes equal the hand-iterated formulas (property, 10 seeds)`, () => {
      for (let seed = 1; seed <= 10; seed++) {
        const random = seededRandom(seed * 101);
        const size = 5 + Math.floor((random() + 0.5) * 40);
        const params = { eta: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
        const strategy = createStrategy(variant, {
          serverLearningRate: params.eta,
          beta1: params.beta1,
          tau: params.tau,
          ...(variant === 'fedadagrad' ? {} : { beta2: params.beta2 }),
        });
        const x0 = randomVector(random, size);
        const rounds: ClientUpdate[][] = [0, 1].map(() =>
          Array.from({ length: 3 }, () => ({ delta: randomVector(random, size, 0.02), numExamples: 1 + Math.floor((random() + 0.5) * 100) })),
        );
        const meanOf = (updates: ClientUpdate[]) => {
          const total = updates.reduce((sum, u) => sum + u.numExamples, 0);
          return Array.from({ length: size }, (_, i) => updates.reduce((sum, u) => sum + u.numExamples * u.delta[i]!, 0) / total);
        };
        const r1 = runRound(strategy, x0, rounds[0]!);
        // The state crosses a "restart": copied out to fresh bytes at an odd offset, as storage would.
        const stored = new Uint8Array(r1.serverState!.length + 1);
        stored.set(r1.serverState!, 1);
        const r2 = runRound(
          createStrategy(variant, {
            serverLearningRate: params.eta,
            beta1: params.beta1,
            tau: params.tau,
            ...(variant === 'fedadagrad' ? {} : { beta2: params.beta2 }),
          }),
          r1.weights,
          rounds[1]!,
          stored.subarray(1),
        );
        const reference = referenceFedOpt(variant, [...x0], [meanOf(rounds[0]!), meanOf(rounds[1]!)], params);
        const [m, v] = decodeServerState(r2.serverState!, { tag: variant, vectors: 2, length: size });
        for (let i = 0; i < size; i++) {
          expect(r2.weights[i]).toBeCloseTo(reference.x[i]!, 5);
          expect(m![i]).toBeCloseTo(reference.m[i]!, 7);
          expect(Math.abs(v![i]! - reference.v[i]!)).toBeLessThanOrEqual(1e-6 * reference.v[i]!);
        }
        expect(r2.warnings).toEqual([]);
        // updateNorm is the change applied this round.
        const applied = Math.hypot(...Array.from(r2.weights, (w, i) => w - r1.weights[i]!));
        expect(r2.updateNorm).toBeCloseTo(applied, 10);
      }
    });
  }

  it('a restart is invisible: round 2 from persisted bytes equals round 2 from the in-memory result', () => {
    const random = seededRandom(9);
    const x0 = randomVector(random, 32);
    const deltas = [0, 1].map(() => [{ delta: randomVector(random, 32, 0.1), numExamples: 10 }]);
    const strategy = createStrategy('fedyogi');
    const r1 = runRound(strategy, x0, deltas[0]!);
    const a = runRound(strategy, r1.weights, deltas[1]!, r1.serverState);
    const b = runRound(createStrategy('fedyogi'), Float32Array.from(r1.weights), deltas[1]!, Uint8Array.from(r1.serverState!));
    expect([...a.weights]).toEqual([...b.weights]);
    expect([...a.serverState!]).toEqual([...b.serverState!]);
  });

  it('state of another strategy or model size: fresh state and a warning, not a failed round', () => {
    const global = vec(0.5, -0.5, 1);
    const updates = [update(3, 0.1, 0.2, -0.3)];
    const fresh = runRound(createStrategy('fedadam'), global, updates);
    const yogiState = runRound(createStrategy('fedyogi'), global, updates).serverState;
    const wrongSize = encodeServerState('fedadam', [new Float32Array(7), new Float32Array(7)]);
    for (const [state, reason] of [
      [yogiState, /belongs to strategy "fedyogi", not "fedadam"/],
      [wrongSize, /needs 2 of 3/],
      [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]), /bad magic/],
    ] as const) {
      const result = runRound(createStrategy('fedadam'), global, updates, state);
      expect([...result.weights]).toEqual([...fresh.weights]);
      expect(result.warnings).toHaveLength(1);
      expect(result.warnings![0]).toMatch(reason);
      expect(result.warnings![0]).toMatch(/"fedadam" starts from fresh state/);
    }
    // Stateless strategies return no state, so a later stateful round starts fresh silently.
    expect(runRound(createStrategy('fedavg'), global, updates, yogiState).serverState).toBeNull();
  });
});
