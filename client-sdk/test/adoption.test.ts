import { describe, expect, it } from 'vitest';
import { DEFAULT_ADOPTION_TOLERANCE, toleranceAdoption, type EvaluationResult } from '../src/index.js';

const result = (accuracy: number, loss = 1): EvaluationResult => ({ accuracy, loss, numExamples: 100 });

describe('toleranceAdoption', () => {
  it('defaults to a 0.02 accuracy tolerance', () => {
    expect(DEFAULT_ADOPTION_TOLERANCE).toBe(0.02);
    const policy = toleranceAdoption();
    expect(policy({ global: result(0.9), personal: result(0.9) }).adopt).toBe(true); // equal
    expect(policy({ global: result(0.95), personal: result(0.9) }).adopt).toBe(true); // better
    expect(policy({ global: result(0.88), personal: result(0.9) }).adopt).toBe(true); // worse by exactly the tolerance
    expect(policy({ global: result(0.879), personal: result(0.9) }).adopt).toBe(false); // worse by more
  });

  it('adopts when the device has no personalized model', () => {
    const decision = toleranceAdoption()({ global: result(0.1), personal: null });
    expect(decision).toEqual({ adopt: true, reason: 'no personalized model yet' });
  });

  it('honours a custom tolerance', () => {
    const strict = toleranceAdoption({ tolerance: 0 });
    expect(strict({ global: result(0.899), personal: result(0.9) }).adopt).toBe(false);
    const lenient = toleranceAdoption({ tolerance: 0.1 });
    expect(lenient({ global: result(0.81), personal: result(0.9) }).adopt).toBe(true);
    expect(lenient({ global: result(0.79), personal: result(0.9) }).adopt).toBe(false);
    expect(() => toleranceAdoption({ tolerance: -1 })).toThrow(RangeError);
  });

  it('can compare losses instead (lower is better)', () => {
    const byLoss = toleranceAdoption({ metric: 'loss', tolerance: 0.05 });
    expect(byLoss({ global: result(0, 0.54), personal: result(0, 0.5) }).adopt).toBe(true);
    expect(byLoss({ global: result(0, 0.56), personal: result(0, 0.5) }).adopt).toBe(false);
  });

  it('never adopts a global model with a non-finite metric over a finite personal one', () => {
    expect(toleranceAdoption()({ global: result(NaN), personal: result(0.5) }).adopt).toBe(false);
    expect(toleranceAdoption()({ global: result(0.5), personal: result(NaN) }).adopt).toBe(true);
  });
});
