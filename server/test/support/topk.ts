/**
 * Reads a top-k encoding's layout independently of the decoder (compression.ts): per tensor
 * [count u32 × T][scale f32 × T][q i8 × K][gap varint × K], position = previous + 1 + gap.
 */
import { shapeSize } from '@flock/client-sdk/protocol';

export interface TopkLayout {
  /** Flat positions of the kept values, in order. */
  positions: number[];
  /** Where the int8 values start and the gaps start (bytes). */
  valuesAt: number;
  gapsAt: number;
}

export function topkLayout(data: Uint8Array, shapes: readonly (readonly number[])[]): TopkLayout {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tensors = shapes.length;
  let kept = 0;
  for (let t = 0; t < tensors; t++) kept += view.getUint32(4 * t, true);
  const valuesAt = 8 * tensors;
  const gapsAt = valuesAt + kept;
  const positions: number[] = [];
  let cursor = gapsAt;
  let offset = 0;
  for (let t = 0; t < tensors; t++) {
    let previous = -1;
    for (let c = 0; c < view.getUint32(4 * t, true); c++) {
      let gap = 0;
      for (let shift = 0; ; shift += 7) {
        const byte = data[cursor++]!;
        gap += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) break;
      }
      previous += 1 + gap;
      positions.push(offset + previous);
    }
    offset += shapeSize(shapes[t]!);
  }
  return { positions, valuesAt, gapsAt };
}
