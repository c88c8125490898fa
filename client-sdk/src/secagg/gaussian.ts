/**
 * Gaussian noise from the platform's CSPRNG, for differential privacy: the coordinator's central
 * noise and each device's share of the noise in a distributed-DP secure round. Platform-neutral
 * (crypto.getRandomValues: browsers and Node).
 */
import { randomBytes } from './webcrypto.js';

/** Uniform doubles in (0, 1). */
export type UniformSource = () => number;

/** getRandomValues' largest request. */
const BLOCK_BYTES = 65_536;

/**
 * Uniforms from the operating system's CSPRNG, 53 bits each, never 0 (the noise must not be
 * predictable, nor reproducible from a seed someone could learn). Bytes are drawn in blocks of
 * 64 KiB, so a model of 200,000 parameters costs a few dozen calls.
 */
export function cryptoUniform(): UniformSource {
  let block: DataView = new DataView(new ArrayBuffer(0));
  let offset = 0;
  return () => {
    if (offset + 8 > block.byteLength) {
      const bytes = randomBytes(BLOCK_BYTES);
      block = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      offset = 0;
    }
    const high = block.getUint32(offset) >>> 5; // 27 bits
    const low = block.getUint32(offset + 4) >>> 6; // 26 bits
    offset += 8;
    return (high * 67_108_864 + low + 0.5) / 9_007_199_254_740_992; // (k + 0.5) / 2^53: in (0, 1)
  };
}

/**
 * Adds independent N(0, std²) draws to every value of `out` (Box-Muller, both outputs used) and
 * returns it. Floating-point Gaussian samplers leak through the low bits of their outputs in
 * theory (Mironov 2012 showed it for the Laplace mechanism); docs/PRIVACY.md says so.
 */
export function addGaussian(out: Float64Array, std: number, uniform: UniformSource = cryptoUniform()): Float64Array {
  if (!(std >= 0 && Number.isFinite(std))) throw new RangeError(`standard deviation must be finite and non-negative, got ${std}`);
  for (let i = 0; i < out.length; i += 2) {
    const radius = std * Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    out[i]! += radius * Math.cos(angle);
    if (i + 1 < out.length) out[i + 1]! += radius * Math.sin(angle);
  }
  return out;
}

/** `out` filled with independent N(0, std²) draws. */
export function fillGaussian(out: Float64Array, std: number, uniform: UniformSource = cryptoUniform()): Float64Array {
  return addGaussian(out.fill(0), std, uniform);
}
