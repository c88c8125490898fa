import { randomBytes } from 'node:crypto';

/** Uniform doubles in (0, 1). */
export type UniformSource = () => number;

/**
 * Uniforms from the operating system's CSPRNG, 53 bits each, never 0 (the noise must not be
 * predictable by a device, nor reproducible from a seed someone could learn). Bytes are drawn in
 * blocks of 64 KiB, so a model of 200,000 parameters costs a few dozen syscalls.
 */
export function cryptoUniform(): UniformSource {
  let block = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset + 8 > block.length) {
      block = randomBytes(65_536);
      offset = 0;
    }
    const high = block.readUInt32BE(offset) >>> 5; // 27 bits
    const low = block.readUInt32BE(offset + 4) >>> 6; // 26 bits
    offset += 8;
    return (high * 67_108_864 + low + 0.5) / 9_007_199_254_740_992; // (k + 0.5) / 2^53: in (0, 1)
  };
}

/**
 * Fills `out` with independent N(0, std²) draws (Box-Muller, both outputs used). Floating-point
 * Gaussian samplers leak through the low bits of their outputs in theory (Mironov 2012 showed it
 * for the Laplace mechanism); docs/PRIVACY.md says so.
 */
export function fillGaussian(out: Float64Array, std: number, uniform: UniformSource = cryptoUniform()): Float64Array {
  if (!(std >= 0 && Number.isFinite(std))) throw new RangeError(`standard deviation must be finite and non-negative, got ${std}`);
  for (let i = 0; i < out.length; i += 2) {
    const radius = std * Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}
