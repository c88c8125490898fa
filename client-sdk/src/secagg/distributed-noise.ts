/**
 * Distributed differential privacy in a secure round (the DP-FedAvg noise added by the devices, so
 * the coordinator never sees an unnoised update, nor an unmasked one): each device adds
 * N(0, σ_d²) per coordinate with σ_d = z · C / √m, so that any m summed inputs carry noise of
 * standard deviation at least z · C, the central mechanism's. The round refuses to unmask fewer
 * than m inputs. Pure.
 */

/**
 * m: how many summed inputs the noise is calibrated to, out of the n devices that advertised keys.
 * The secure round's own dropout tolerance decides it: at least thresholdFraction of them (and the
 * round's minimum), so a round that survives its dropouts carries the whole noise, and one where
 * all survive carries √(n / m) times it.
 */
export function noiseSummands(advertised: number, thresholdFraction: number, minDevices: number): number {
  return Math.min(advertised, Math.max(1, minDevices, Math.ceil(thresholdFraction * advertised)));
}

/** σ_d: each device's noise per coordinate for noise multiplier z, clip norm C and m summands. */
export function deviceNoiseStd(noiseMultiplier: number, clipNorm: number, summands: number): number {
  if (!(noiseMultiplier >= 0 && Number.isFinite(noiseMultiplier))) throw new RangeError(`noise multiplier ${noiseMultiplier} must be finite and non-negative`);
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new RangeError(`clipNorm ${clipNorm} must be positive`);
  if (!(Number.isInteger(summands) && summands >= 1)) throw new RangeError(`summands ${summands} must be a positive integer`);
  return (noiseMultiplier * clipNorm) / Math.sqrt(summands);
}
