/**
 * Reads a top-k encoding's layout independently of the decoder (compression.ts, rice.ts):
 * [count u32 × T][level f32 × 8T][rice parameter u8 × T][code 4 bits × K][Rice-coded gaps],
 * position = previous + 1 + gap; a gap is (g >> k) one bits, a zero bit, then k bits, least
 * significant bit first.
 */
import { shapeSize } from '@flock/client-sdk/protocol';

export interface TopkLayout {
  /** Flat positions of the kept values, in order. */
  positions: number[];
  /** Where the 4-bit codes start and where the gaps start (bytes). */
  codesAt: number;
  gapsAt: number;
  /** Bits the gaps take (without the padding of the last byte). */
  gapBits: number;
  /** Per tensor its eight magnitude levels. */
  levels: Float32Array[];
}

export function topkLayout(data: Uint8Array, shapes: readonly (readonly number[])[]): TopkLayout {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tensors = shapes.length;
  let kept = 0;
  for (let t = 0; t < tensors; t++) kept += view.getUint32(4 * t, true);
  const codesAt = 37 * tensors;
  const gapsAt = codesAt + Math.ceil(kept / 2);
  const bit = (at: number): number => (data[gapsAt + Math.floor(at / 8)]! >> (at % 8)) & 1;
  const positions: number[] = [];
  let cursor = 0;
  let offset = 0;
  for (let t = 0; t < tensors; t++) {
    const k = data[36 * tensors + t]!;
    let previous = -1;
    for (let c = 0; c < view.getUint32(4 * t, true); c++) {
      let quotient = 0;
      while (bit(cursor++) === 1) quotient++;
      let remainder = 0;
      for (let b = 0; b < k; b++) remainder += bit(cursor++) * 2 ** b;
      previous += 1 + quotient * 2 ** k + remainder;
      positions.push(offset + previous);
    }
    offset += shapeSize(shapes[t]!);
  }
  const levels = shapes.map((_, t) => Float32Array.from({ length: 8 }, (_, j) => view.getFloat32(4 * tensors + 32 * t + 4 * j, true)));
  return { positions, codesAt, gapsAt, gapBits: cursor, levels };
}
