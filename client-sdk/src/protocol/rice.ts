/**
 * Rice codes (Golomb codes with a power-of-two parameter k; Rice 1979) for the gaps between a
 * top-k delta's positions: a gap g is g >> k in unary (that many 1 bits, then a 0 bit), then its
 * low k bits. The gaps of a top-k selection are close to geometric, for which a Rice code is within
 * a few percent of the entropy; sparse FL updates code their positions this way too (Sattler et al.
 * 2019, "Sparse Ternary Compression", Golomb-coded position gaps). Bits are packed least
 * significant bit first.
 */

/** The largest parameter a gap may be coded with (gaps are below 2^32). */
export const MAX_RICE_PARAMETER = 31;

/** Bits of `gaps` coded with parameter `k`. */
export function riceBits(gaps: ArrayLike<number>, k: number): number {
  let bits = gaps.length * (1 + k);
  for (let i = 0; i < gaps.length; i++) bits += gaps[i]! >>> k;
  return bits;
}

/** The parameter that codes `gaps` in the fewest bits (the smallest such), and that many bits. */
export function bestRiceParameter(gaps: ArrayLike<number>): { parameter: number; bits: number } {
  let best = { parameter: 0, bits: riceBits(gaps, 0) };
  for (let k = 1; k <= MAX_RICE_PARAMETER; k++) {
    const bits = riceBits(gaps, k);
    if (bits < best.bits) best = { parameter: k, bits };
  }
  return best;
}

/** Writes Rice codes into `bytes` (zero-filled) from byte `start` on. */
export class RiceWriter {
  private bit: number;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
  ) {
    this.bit = 8 * start;
  }

  write(gap: number, k: number): void {
    const { bytes } = this;
    for (let q = gap >>> k; q > 0; q--, this.bit++) bytes[this.bit >>> 3]! |= 1 << (this.bit & 7);
    this.bit++; // the 0 that ends the unary part
    for (let b = 0; b < k; b++, this.bit++) if ((gap >>> b) & 1) bytes[this.bit >>> 3]! |= 1 << (this.bit & 7);
  }
}

/** What `RiceReader.read` returns when the bits end before the code does. */
export const RICE_END = -1;
/** What `RiceReader.read` returns when the code stands for more than its `max`. */
export const RICE_TOO_LARGE = -2;

/** Reads Rice codes from bytes [start, end), never past `end`, with work linear in the bits read. */
export class RiceReader {
  private bit: number;
  private readonly endBit: number;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    end: number,
  ) {
    this.bit = 8 * start;
    this.endBit = 8 * end;
  }

  /** The next gap coded with parameter `k`, if it is at most `max`; else RICE_END or RICE_TOO_LARGE. */
  read(k: number, max: number): number {
    const { bytes, endBit } = this;
    const unit = 2 ** k;
    let quotient = 0;
    for (;;) {
      if (this.bit >= endBit) return RICE_END;
      const bit = (bytes[this.bit >>> 3]! >>> (this.bit & 7)) & 1;
      this.bit++;
      if (bit === 0) break;
      quotient++;
      if (quotient * unit > max) return RICE_TOO_LARGE; // stop reading a run that can only overshoot
    }
    if (this.bit + k > endBit) return RICE_END;
    let remainder = 0;
    for (let b = 0; b < k; b++, this.bit++) remainder += ((bytes[this.bit >>> 3]! >>> (this.bit & 7)) & 1) * 2 ** b;
    const gap = quotient * unit + remainder;
    return gap > max ? RICE_TOO_LARGE : gap;
  }

  /** Whether the reader stopped inside the last byte and every bit after it is 0 (the padding). */
  endsCleanly(): boolean {
    if (this.endBit - this.bit >= 8) return false;
    for (let bit = this.bit; bit < this.endBit; bit++) if ((this.bytes[bit >>> 3]! >>> (bit & 7)) & 1) return false;
    return true;
  }
}
