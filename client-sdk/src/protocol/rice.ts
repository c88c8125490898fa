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

/** A failed `RiceReader.readPositions`: which gap, and whether the bits ended before it did or it led outside the tensor. */
export interface RiceFailure {
  gap: number;
  reason: 'end' | 'outside';
}

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

  /**
   * Reads `count` gaps coded with parameter `k` (at most 31) as positions inside a tensor of `size`
   * values (the first at its gap, each next at previous + 1 + gap) and writes `offset + position`
   * to out[at], out[at + 1], ...; null when all fit, else where and why it stopped.
   */
  readPositions(k: number, count: number, size: number, out: Uint32Array, at: number, offset: number): RiceFailure | null {
    const { bytes, endBit } = this;
    const unit = 2 ** k;
    let bit = this.bit;
    let previous = -1;
    try {
      for (let c = 0; c < count; c++) {
        const max = size - previous - 2; // the largest gap that stays inside the tensor
        // The unary part a byte at a time: the run of 1 bits from the cursor, then its ending 0.
        let quotient = 0;
        for (;;) {
          if (bit >= endBit) return { gap: c, reason: 'end' };
          const shift = bit & 7;
          const rest = bytes[bit >>> 3]! >>> shift; // this byte's bits from the cursor on, the rest 0
          const ones = 31 - Math.clz32(~rest & (rest + 1)); // the index of its lowest 0 bit
          if (ones < 8 - shift) {
            quotient += ones;
            bit += ones + 1;
            break;
          }
          quotient += 8 - shift;
          bit += 8 - shift;
          if (quotient * unit > max) return { gap: c, reason: 'outside' }; // a run that can only overshoot
        }
        if (bit + k > endBit) return { gap: c, reason: 'end' };
        let remainder = 0;
        for (let got = 0; got < k;) {
          const shift = bit & 7;
          const take = Math.min(8 - shift, k - got);
          remainder |= ((bytes[bit >>> 3]! >>> shift) & ((1 << take) - 1)) << got;
          got += take;
          bit += take;
        }
        const gap = quotient * unit + (remainder >>> 0);
        if (gap > max) return { gap: c, reason: 'outside' };
        previous += 1 + gap;
        out[at + c] = offset + previous;
      }
      return null;
    } finally {
      this.bit = bit;
    }
  }

  /** Whether the reader stopped inside the last byte and every bit after it is 0 (the padding). */
  endsCleanly(): boolean {
    if (this.endBit - this.bit >= 8) return false;
    for (let bit = this.bit; bit < this.endBit; bit++) if ((this.bytes[bit >>> 3]! >>> (bit & 7)) & 1) return false;
    return true;
  }
}
