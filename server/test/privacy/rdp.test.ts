import { describe, expect, it } from 'vitest';
import { epsilonFromRdp, epsilonOfRounds, noiseForEpsilon, rdpOfSampledGaussian } from '../../src/privacy/rdp.js';

/** Opacus's default orders (opacus/accountants/rdp.py, RDPAccountant.DEFAULT_ALPHAS). */
const OPACUS_ORDERS = [...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10), ...Array.from({ length: 52 }, (_, i) => 12 + i)];

function expectRelativelyClose(actual: readonly number[], expected: readonly number[], rtol: number): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) =>
    expect(Math.abs(value - expected[i]!), `index ${i}: ${value} vs ${expected[i]}`).toBeLessThanOrEqual(rtol * Math.abs(expected[i]!)),
  );
}

describe('RDP of the Poisson-subsampled Gaussian mechanism', () => {
  it('matches dp_accounting at integer and fractional orders', () => {
    // google/differential-privacy, python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py,
    // test_compute_rdp_poisson_sampled_gaussian: q = 0.01, z = 2.5, 50 rounds, rtol 1e-4. (Its value at
    // α = 1.5, 6.7058e-4, is 3% above the exact one, which the quadrature test below checks instead.)
    const orders = [2.5, 5, 50, 100];
    const rdp = rdpOfSampledGaussian(0.01, 2.5, orders).map((r) => 50 * r);
    expectRelativelyClose(rdp, [1.0854871e-3, 2.18075656e-3, 2.38460375e-2, 1.67416308e2], 1e-4);
    expect(rdpOfSampledGaussian(0.01, 2.5, [Infinity])).toEqual([Infinity]);
  });

  it('equals log E[(1 − q + q·e^((2x−1)/2z²))^α] / (α − 1), x ~ N(0, z²), integrated numerically', () => {
    // The definition (Mironov et al. 2019, section 3), by the midpoint rule: the independent check
    // dp_accounting's test_compute_log_a_equals_mp makes with mpmath.
    const quadrature = (q: number, z: number, alpha: number): number => {
      const step = 1e-3;
      let sum = 0;
      for (let x = -40 * z + step / 2; x < 40 * z; x += step) {
        const density = Math.exp(-(x * x) / (2 * z * z)) / (z * Math.sqrt(2 * Math.PI));
        sum += density * (1 - q + q * Math.exp((2 * x - 1) / (2 * z * z))) ** alpha * step;
      }
      return Math.log(sum) / (alpha - 1);
    };
    for (const [q, z, alpha] of [
      [0.01, 2.5, 1.5],
      [0.01, 2.5, 3.7],
      [0.1, 1.2, 2.25],
      [0.3, 4, 6],
    ] as const) {
      expectRelativelyClose(rdpOfSampledGaussian(q, z, [alpha]), [quadrature(q, z, alpha)], 1e-6);
    }
  });

  it('is α / 2z² without sampling, 0 without participation, and infinite without noise', () => {
    expect(rdpOfSampledGaussian(1, 2.71828, [3.14159])[0]).toBeCloseTo(3.14159 / (2 * 2.71828 ** 2), 12);
    expect(rdpOfSampledGaussian(0, 1, [2, 3.5])).toEqual([0, 0]);
    expect(rdpOfSampledGaussian(0.1, 0, [2])).toEqual([Infinity]);
  });

  it('agrees between the integer and the fractional series at (nearly) the same order', () => {
    for (const [q, z] of [
      [0.01, 1],
      [0.1, 0.8],
      [0.5, 3],
    ] as const) {
      const [atInteger] = rdpOfSampledGaussian(q, z, [8]);
      const [justAbove] = rdpOfSampledGaussian(q, z, [8 + 1e-9]);
      expect(Math.abs(justAbove! - atInteger!) / atInteger!).toBeLessThan(1e-6);
    }
  });

  it('refuses parameters outside their domain', () => {
    expect(() => rdpOfSampledGaussian(1.5, 1)).toThrow(/sampling rate/);
    expect(() => rdpOfSampledGaussian(0.1, -1)).toThrow(/noise multiplier/);
    expect(() => rdpOfSampledGaussian(0.1, 1, [1])).toThrow(/orders must be above 1/);
  });
});

describe('conversion to (ε, δ)', () => {
  it('matches dp_accounting for a constant RDP curve (pure DP)', () => {
    // rdp_privacy_accountant_test.py, test_compute_epsilon_delta_pure_dp
    const orders = Array.from({ length: 31 }, (_, i) => 2 + i);
    const { epsilon, order } = epsilonFromRdp(
      orders,
      orders.map(() => 1.1),
      1e-5,
    );
    expect(epsilon).toBeCloseTo(1.32783806176, 10);
    expect(order).toBe(32);
  });

  it('matches dp_accounting for the Gaussian mechanism calibrated to (1, 1e-6)', () => {
    // rdp_privacy_accountant_test.py, test_compute_epsilon_delta_gaussian: z = 4.530877117, orders 1.001 .. 99.999
    const orders = Array.from({ length: 98_999 }, (_, i) => 0.001 * (1001 + i));
    expect(epsilonFromRdp(orders, rdpOfSampledGaussian(1, 4.530877117, orders), 1e-6).epsilon).toBeCloseTo(1, 6);
  });

  it("matches Opacus's RDP accountant over 2,250 rounds", () => {
    // pytorch/opacus, opacus/tests/accountants_test.py, test_rdp_accountant: z = 1.5, q = 0.04, 90 / 0.04 steps, δ = 1e-5
    const { epsilon } = epsilonOfRounds([{ samplingRate: 0.04, noiseMultiplier: 1.5, rounds: 2250 }], 1e-5, OPACUS_ORDERS);
    expect(epsilon).toBeCloseTo(7.32911117143, 8);
  });

  it('composes stretches of rounds by adding their RDP', () => {
    const stretch = { samplingRate: 0.02, noiseMultiplier: 1.1, rounds: 100 };
    const once = epsilonOfRounds([{ ...stretch, rounds: 200 }], 1e-5);
    const split = epsilonOfRounds([stretch, stretch], 1e-5);
    expect(split.epsilon).toBeCloseTo(once.epsilon, 12);
    expect(epsilonOfRounds([], 1e-5).epsilon).toBe(0);
  });
});

describe('solving for the noise multiplier', () => {
  it("agrees with Opacus's get_noise_multiplier and meets the target", () => {
    // opacus/tests/accountants_test.py, test_get_noise_multiplier: ε = 8, δ = 1e-5, q = 0.04, 90 epochs -> 1.425307617.
    // That Opacus bisects until its bracket is 0.01 wide (SIGMA_PRECISION) and returns the upper end, so the
    // exact answer lies within 0.01 below its value.
    const z = noiseForEpsilon({ epsilon: 8, delta: 1e-5, samplingRate: 0.04, rounds: 2250 }, { orders: OPACUS_ORDERS });
    expect(z).toBeLessThanOrEqual(1.425307617);
    expect(z).toBeGreaterThan(1.425307617 - 0.01);
    const reached = epsilonOfRounds([{ samplingRate: 0.04, noiseMultiplier: z, rounds: 2250 }], 1e-5, OPACUS_ORDERS).epsilon;
    expect(reached).toBeLessThanOrEqual(8);
    expect(reached).toBeGreaterThan(7.999);
  });
});
