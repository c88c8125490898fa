import { describe, expect, it } from 'vitest';
import { l2Norm } from '@flock/client-sdk';
import { mulberry32 } from '../../src/datasets/seeded-random.js';
import { assignAttacks, flipLabels, NOISE_STD, poisonDelta, SIGN_FLIP_SCALE } from '../../src/simulation/byzantine.js';

describe('Byzantine clients', () => {
  it('makes exactly round(F * K) clients Byzantine, the same ones for the same seed', () => {
    const attacks = assignAttacks(100, 0.2, 'noise', 7);
    expect(attacks.filter((a) => a !== null)).toHaveLength(20);
    expect(attacks.filter((a) => a === 'noise')).toHaveLength(20);
    expect(assignAttacks(100, 0.2, 'noise', 7)).toEqual(attacks);
    expect(assignAttacks(100, 0.2, 'noise', 8)).not.toEqual(attacks);
    expect(assignAttacks(10, 0, 'mixed', 1).every((a) => a === null)).toBe(true);
  });

  it('spreads the attacks evenly in mixed mode', () => {
    const attacks = assignAttacks(100, 0.3, 'mixed', 1);
    for (const kind of ['noise', 'sign-flip', 'label-flip'] as const) expect(attacks.filter((a) => a === kind)).toHaveLength(10);
  });

  it('refuses a fraction outside [0, 1)', () => {
    expect(() => assignAttacks(10, 1, 'noise', 1)).toThrow(RangeError);
    expect(() => assignAttacks(10, -0.1, 'noise', 1)).toThrow(RangeError);
  });

  it('flips labels y -> 9 - y', () => {
    expect(Array.from(flipLabels(Uint8Array.from([0, 1, 5, 9])))).toEqual([9, 8, 4, 0]);
  });

  it('sends -4x the honest delta for sign-flip, and the honest one for label-flip', () => {
    const delta = [Float32Array.from([1, -2]), Float32Array.from([0.5])];
    const flipped = poisonDelta('sign-flip', delta, mulberry32(1));
    expect(flipped.map((t) => Array.from(t))).toEqual([[-SIGN_FLIP_SCALE, 2 * SIGN_FLIP_SCALE], [-0.5 * SIGN_FLIP_SCALE]]);
    expect(poisonDelta('label-flip', delta, mulberry32(1))).toEqual(delta);
  });

  it('replaces the delta with finite Gaussian noise of the documented scale (valid for the protocol, huge in norm)', () => {
    const delta = [new Float32Array(50_000), new Float32Array(50_000)];
    const noise = poisonDelta('noise', delta, mulberry32(3));
    expect(noise.map((t) => t.length)).toEqual([50_000, 50_000]);
    const values = noise.flatMap((t) => Array.from(t));
    expect(values.every(Number.isFinite)).toBe(true);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(std).toBeGreaterThan(NOISE_STD * 0.98);
    expect(std).toBeLessThan(NOISE_STD * 1.02);
    expect(l2Norm(noise)).toBeGreaterThan(300); // sqrt(100,000) ~ 316
  });
});
