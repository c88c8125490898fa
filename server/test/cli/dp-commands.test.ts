import { describe, expect, it } from 'vitest';
import { runFlock } from './harness.js';

/*
 * `flock dp` plans privacy offline: no coordinator, no token. Reference values: Opacus's accountant
 * tests (pytorch/opacus, opacus/tests/accountants_test.py), with our default orders, which include
 * Opacus's optimum here (α = 3.9).
 */
describe('flock dp', () => {
  it('epsilon --json prints the ε of a schedule of rounds, without a coordinator or a token', async () => {
    const { code, stdout, stderr } = await runFlock([
      '--json',
      'dp',
      'epsilon',
      '--noise-multiplier',
      '1.5',
      '--sampling-rate',
      '0.04',
      '--rounds',
      '2250',
      '--delta',
      '1e-5',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const answer = JSON.parse(stdout) as { epsilon: number; order: number };
    expect(answer.epsilon).toBeCloseTo(7.32911117143, 8);
    expect(answer.order).toBe(3.9);
  });

  it('noise --json prints the noise multiplier that meets a target ε', async () => {
    const { code, stdout } = await runFlock(['dp', 'noise', '--epsilon', '8', '--sampling-rate', '0.04', '--rounds', '2250', '--delta', '1e-5', '--json']);
    expect(code).toBe(0);
    const { noiseMultiplier } = JSON.parse(stdout) as { noiseMultiplier: number };
    // Opacus answers 1.425307617, the upper end of a bisection bracket 0.01 wide
    expect(noiseMultiplier).toBeGreaterThan(1.415307617);
    expect(noiseMultiplier).toBeLessThanOrEqual(1.425307617);
  });

  it('says what it computed, and refuses parameters outside their domain as usage errors', async () => {
    const human = await runFlock(['dp', 'epsilon', '--noise-multiplier', '1.1', '--sampling-rate', '0.01', '--rounds', '100', '--delta', '1e-5']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^ε = [\d.]+ at δ = 0\.00001 after 100 round\(s\) with z = 1\.1, q = 0\.01/);
    expect(human.stdout).toContain('Poisson-sampled Gaussian');
    for (const bad of [
      ['epsilon', '--noise-multiplier', '1', '--sampling-rate', '1.5', '--rounds', '10', '--delta', '1e-5'],
      ['epsilon', '--noise-multiplier', '1', '--sampling-rate', '0.1', '--rounds', '10', '--delta', '1'],
      ['noise', '--epsilon', '0', '--sampling-rate', '0.1', '--rounds', '10', '--delta', '1e-5'],
      ['noise', '--sampling-rate', '0.1', '--rounds', '10', '--delta', '1e-5'],
    ]) {
      const refused = await runFlock(['dp', ...bad]);
      expect(refused.code, bad.join(' ')).toBe(2);
      expect(refused.stderr).toMatch(/error: (option|required option)/);
    }
  });
});
