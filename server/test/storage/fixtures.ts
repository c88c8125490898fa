import type { RoundRecord } from '../../src/contract/index.js';
import { emptyRoundMetrics } from '../../src/rounds/round-types.js';
import type { NewModelVersion } from '../../src/storage/storage.js';

/** Shapes of the 2NN (784-200-200-10): 199,210 float32 values. */
export const TWO_NN_SHAPES = [[784, 200], [200], [200, 200], [200], [200, 10], [10]];

/** Deterministic float32 values with awkward bit patterns (negative zero, subnormals, extremes). */
export function patternWeights(count: number, seed = 1): Float32Array {
  const values = new Float32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = (state / 2 ** 32 - 0.5) * 0.2;
  }
  const specials = [-0, 1.4e-45, -1.17549435e-38, 3.4028234e38, -3.4028234e38, 1e-7];
  specials.forEach((value, i) => {
    if (i < count) values[i] = value;
  });
  return values;
}

export function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export function newVersion(shapes: number[][] = [[3, 2], [2]], overrides: Partial<NewModelVersion> = {}): NewModelVersion {
  const numParameters = shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
  return {
    parentVersion: null,
    roundId: null,
    source: 'initial',
    numParameters,
    metrics: { testAccuracy: 0.5, note: 'fixture', missing: null },
    privacy: null,
    topology: { class_name: 'Sequential', config: { name: 'fixture', layers: [{ class_name: 'Dense', config: { units: 2 } }] } },
    weightSpecs: shapes.map((shape, i) => ({ name: `layer${i}/w`, shape, dtype: 'float32' as const })),
    strategyState: null,
    ...overrides,
  };
}

export function weightsFor(version: NewModelVersion, seed = 1): Uint8Array {
  return bytesOf(patternWeights(version.numParameters, seed));
}

export function newRound(id: string, overrides: Partial<RoundRecord> = {}): RoundRecord {
  const at = '2025-01-01T00:00:00.000Z';
  return {
    id,
    baseVersion: 1,
    status: 'selecting',
    params: {
      minClients: 2,
      targetClients: 3,
      overSelection: 1.3,
      selectionTimeoutMs: 60_000,
      deadlineMs: 120_000,
      plan: { epochs: 1, batchSize: 10, learningRate: 0.05 },
      strategy: 'fedavg',
      strategyOptions: {},
      differentialPrivacy: null,
      maxUpdateNorm: null,
    },
    metrics: emptyRoundMetrics(),
    committedVersion: null,
    error: null,
    createdAt: at,
    updatedAt: at,
    endedAt: null,
    ...overrides,
  };
}
