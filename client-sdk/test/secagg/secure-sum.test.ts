import { describe, expect, it } from 'vitest';
import { sumPrecision, type SecAggResult } from '../../src/secagg/index.js';
import { simulateSecureRound, type DropPhase, type SimulationOutcome } from './simulation.js';

const DEVICES = 20;
const DELTA_LENGTH = 1000;

/** Σ w·clip(delta), Σ w, Σ w·loss over the devices that should be in the sum, in float64. */
function plainSum(outcome: SimulationOutcome, clipNorm = 10, maxWeight = 1000): { delta: Float64Array; weight: number; loss: number } {
  const delta = new Float64Array(outcome.updates[0]!.delta.length);
  let weight = 0;
  let loss = 0;
  for (const i of outcome.summed) {
    const update = outcome.updates[i]!;
    const w = Math.min(update.numExamples, maxWeight);
    let squares = 0;
    for (const value of update.delta) squares += value * value;
    const clip = Math.min(1, clipNorm / Math.sqrt(squares));
    for (let j = 0; j < delta.length; j++) delta[j]! += w * clip * update.delta[j]!;
    weight += w;
    loss += w * update.trainLoss;
  }
  return { delta, weight, loss };
}

function expectExactSum(outcome: SimulationOutcome): SecAggResult {
  const { result } = outcome;
  if ('failed' in result) throw new Error(`round failed: ${result.failed}`);
  const expected = plainSum(outcome);
  expect(result.summed).toBe(outcome.summed.length);
  expect(result.sum.totalWeight).toBe(expected.weight);
  const precision = sumPrecision(result.params, result.summed);
  let worst = 0;
  for (let j = 0; j < DELTA_LENGTH; j++) worst = Math.max(worst, Math.abs(result.sum.weightedDeltaSum[j]! - expected.delta[j]!));
  expect(worst).toBeLessThanOrEqual(precision);
  expect(worst).toBeGreaterThanOrEqual(0);
  // What the mean delta (the sum over the total weight) is off by at most: far below float32 noise of an update.
  expect(precision / result.sum.totalWeight).toBeLessThan(1e-6);
  expect(Math.abs(result.sum.weightedLossSum - expected.loss)).toBeLessThan(1e-2);
  return result;
}

describe('secure aggregation: the exact sum with dropouts at every phase', () => {
  it('recovers the sum with no dropout', async () => {
    expectExactSum(await simulateSecureRound({ devices: DEVICES, deltaLength: DELTA_LENGTH }));
  });

  const phases: DropPhase[] = ['advertise', 'shareKeys', 'maskedInput', 'unmasking'];
  for (const phase of phases) {
    for (const fraction of [0.1, 0.3]) {
      it(`recovers the sum of the survivors with ${fraction * 100}% dropping at ${phase}`, async () => {
        const count = Math.round(DEVICES * fraction);
        const outcome = await simulateSecureRound({ devices: DEVICES, deltaLength: DELTA_LENGTH, drop: { phase, count } });
        const result = expectExactSum(outcome);
        // Devices dropping at unmasking sent their masked input: they are in the sum.
        expect(result.summed).toBe(phase === 'unmasking' ? DEVICES : DEVICES - count);
      });
    }
  }

  it("with X25519 keys: 30% dropping after sharing keys, so dropped devices' X25519 mask keys are rebuilt from shares", async () => {
    const count = Math.round(DEVICES * 0.3);
    const outcome = await simulateSecureRound({ devices: DEVICES, deltaLength: DELTA_LENGTH, keyAgreement: 'X25519', drop: { phase: 'maskedInput', count } });
    expect(expectExactSum(outcome).summed).toBe(DEVICES - count);
  });

  it('works on a sparse graph (SecAgg+): 40 devices with 8 neighbours each, 10% dropping after sharing keys', async () => {
    const outcome = await simulateSecureRound({ devices: 40, deltaLength: DELTA_LENGTH, neighbours: 8, drop: { phase: 'maskedInput', count: 4 } });
    expectExactSum(outcome);
  });

  it('no masked input the coordinator receives resembles its device input', async () => {
    const outcome = await simulateSecureRound({ devices: 6, deltaLength: DELTA_LENGTH });
    expect(outcome.seen).toHaveLength(6);
    for (const { masked, plain } of outcome.seen) {
      let equal = 0;
      for (let j = 0; j < masked.length; j++) if (masked[j] === plain[j]) equal++;
      // Uniform masks: a coordinate matches by chance with probability 2^-32.
      expect(equal).toBeLessThanOrEqual(1);
    }
    expectExactSum(outcome);
  });
});

describe('secure aggregation with distributed DP noise', () => {
  it('the sum carries noise of z C sqrt(summed / m): any m summed inputs carry the central z C', async () => {
    // 20 devices, threshold fraction 0.5: the noise is calibrated to m = 10 summands; 4 drop, 16 are summed.
    const [clipNorm, noiseMultiplier, length] = [0.5, 1, 4000];
    const outcome = await simulateSecureRound({
      devices: DEVICES,
      deltaLength: length,
      clipNorm,
      maxWeight: 1,
      noiseMultiplier,
      drop: { phase: 'maskedInput', count: 4 },
    });
    const { result } = outcome;
    if ('failed' in result) throw new Error(result.failed);
    expect(result.params.noiseStd).toBeCloseTo((noiseMultiplier * clipNorm) / Math.sqrt(10), 12);
    expect(result.summed).toBe(16);
    expect(result.sum.totalWeight).toBe(16); // weight 1: one device, one vote
    const expected = plainSum(outcome, clipNorm, 1);
    let squares = 0;
    for (let j = 0; j < length; j++) squares += (result.sum.weightedDeltaSum[j]! - expected.delta[j]!) ** 2;
    const std = Math.sqrt(squares / length);
    // Standard error of the estimate: 1.1% over 4,000 coordinates.
    expect(Math.abs(std / (noiseMultiplier * clipNorm * Math.sqrt(16 / 10)) - 1)).toBeLessThan(0.06);
  });

  it('unmasks nothing when fewer inputs arrive than the noise is calibrated to', async () => {
    const outcome = await simulateSecureRound({
      devices: 6,
      deltaLength: 100,
      thresholdFraction: 1,
      maxWeight: 1,
      noiseMultiplier: 1,
      drop: { phase: 'maskedInput', count: 1 },
    });
    expect(outcome.result).toEqual({ failed: "5 masked input(s); the round's distributed noise needs 6" });
  });
});

describe('secure aggregation: too few devices fails the round', () => {
  it('fails when fewer devices than minDevices send a masked input', async () => {
    const outcome = await simulateSecureRound({ devices: 6, deltaLength: 100, minDevices: 5, drop: { phase: 'maskedInput', count: 2 } });
    expect(outcome.result).toEqual({ failed: '4 masked input(s), 5 needed' });
  });

  it('fails when too few devices reveal shares to rebuild the masks (below the threshold)', async () => {
    // 6 devices, complete graph: threshold 4 of 6; 3 revealing leaves every secret with 3 shares.
    const outcome = await simulateSecureRound({ devices: 6, deltaLength: 100, drop: { phase: 'unmasking', count: 3 } });
    expect('failed' in outcome.result && outcome.result.failed).toMatch(/share\(s\) of device \d+'s self mask, threshold 4/);
  });

  it('fails when fewer than two devices advertise keys', async () => {
    const outcome = await simulateSecureRound({ devices: 3, deltaLength: 10, drop: { phase: 'advertise', count: 2 } });
    expect(outcome.result).toEqual({ failed: '1 device(s) advertised keys, 2 needed' });
  });
});
