/**
 * Shamir t-of-n secret sharing (Shamir 1979) of 32-byte secrets over the prime field GF(2^521 - 1),
 * a Mersenne prime larger than any 32-byte value, so one field element holds a whole secret. A
 * share is the polynomial's value at a holder's index (x = 1, 2, ...), 66 bytes big-endian.
 * Coefficients come from the platform's CSPRNG (`crypto.getRandomValues`).
 */
import { randomBytes } from './webcrypto.js';

/** 2^521 - 1 (a Mersenne prime): reduction is a shift and an add. */
export const FIELD_PRIME = (1n << 521n) - 1n;
/** Bytes of one share (521 bits, rounded up). */
export const SHARE_BYTES = 66;
/** Bytes of a shared secret. */
export const SECRET_BYTES = 32;

export interface Share {
  /** The holder's index, 1 or more (0 would reveal the secret). */
  x: number;
  /** The polynomial's value at x, SHARE_BYTES big-endian. */
  y: Uint8Array;
}

function mod(value: bigint): bigint {
  const reduced = value % FIELD_PRIME;
  return reduced < 0n ? reduced + FIELD_PRIME : reduced;
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

export function bigIntToBytes(value: bigint, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let rest = value;
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  if (rest !== 0n) throw new RangeError(`value does not fit in ${length} bytes`);
  return bytes;
}

function randomFieldElement(): bigint {
  // 72 random bytes reduced modulo p: the bias is below 2^-50.
  return mod(bytesToBigInt(randomBytes(72)));
}

/** 1/value mod p by the extended Euclidean algorithm (far cheaper than a 521-bit exponentiation). */
function inverse(value: bigint): bigint {
  let [oldR, r] = [mod(value), FIELD_PRIME];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const quotient = oldR / r;
    [oldR, r] = [r, oldR - quotient * r];
    [oldS, s] = [s, oldS - quotient * s];
  }
  if (oldR !== 1n) throw new RangeError('no inverse');
  return mod(oldS);
}

function checkIndices(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x < 1 || x > 0xffff_ffff) throw new RangeError(`share index ${x} must be an integer from 1 to 2^32 - 1`);
    if (seen.has(x)) throw new RangeError(`share index ${x} appears twice`);
    seen.add(x);
  }
}

/**
 * Splits a 32-byte secret into one share per holder index; any `threshold` of them recover it,
 * fewer reveal nothing about it.
 */
export function splitSecret(secret: Uint8Array, threshold: number, holders: readonly number[]): Share[] {
  if (secret.length !== SECRET_BYTES) throw new RangeError(`a secret has ${SECRET_BYTES} bytes, not ${secret.length}`);
  checkIndices(holders);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > holders.length) {
    throw new RangeError(`threshold ${threshold} must be from 1 to the ${holders.length} holders`);
  }
  const coefficients = [bytesToBigInt(secret)];
  for (let i = 1; i < threshold; i++) coefficients.push(randomFieldElement());
  return holders.map((x) => {
    // Horner's rule.
    let y = 0n;
    const bx = BigInt(x);
    for (let i = coefficients.length - 1; i >= 0; i--) y = (y * bx + coefficients[i]!) % FIELD_PRIME;
    return { x, y: bigIntToBytes(y, SHARE_BYTES) };
  });
}

/**
 * Recovers the secret from `threshold` or more shares (Lagrange interpolation at 0; the first
 * `threshold` are used). Throws when there are too few, or when the result is no 32-byte secret
 * (inconsistent shares).
 */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  if (shares.length < threshold) throw new RangeError(`${shares.length} share(s), ${threshold} needed`);
  const used = shares.slice(0, threshold);
  checkIndices(used.map((share) => share.x));
  // secret = Σ y_i · num_i / den_i = (Σ y_i · num_i · Π_{j≠i} den_j) / Π den: one inversion in all.
  const xs = used.map((share) => BigInt(share.x));
  const numerators: bigint[] = [];
  const denominators: bigint[] = [];
  for (const [i, xi] of xs.entries()) {
    let numerator = 1n;
    let denominator = 1n;
    for (const [j, xj] of xs.entries()) {
      if (i === j) continue;
      numerator = (numerator * xj) % FIELD_PRIME;
      denominator = mod(denominator * (xj - xi));
    }
    numerators.push(numerator);
    denominators.push(denominator);
  }
  // Products of the denominators before and after each i (no division needed).
  const before = [1n];
  for (const denominator of denominators) before.push((before[before.length - 1]! * denominator) % FIELD_PRIME);
  let after = 1n;
  let sum = 0n;
  for (let i = used.length - 1; i >= 0; i--) {
    const yi = bytesToBigInt(used[i]!.y);
    if (yi >= FIELD_PRIME) throw new RangeError('a share is not a field element');
    sum = (sum + ((yi * numerators[i]!) % FIELD_PRIME) * ((before[i]! * after) % FIELD_PRIME)) % FIELD_PRIME;
    after = (after * denominators[i]!) % FIELD_PRIME;
  }
  return bigIntToBytes((sum * inverse(before[used.length]!)) % FIELD_PRIME, SECRET_BYTES);
}
