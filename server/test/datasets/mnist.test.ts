import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initNodeBackend } from '@flock/client-sdk/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MNIST_PIXELS,
  loadMnist,
  mnistDataDir,
  mnistTensors,
  oneHot,
  oneHotLabels,
  parseIdxImages,
  parseIdxLabels,
  readMnist,
  readMnistFiles,
  sliceMnist,
} from '../../src/datasets/mnist.js';

const dir = mkdtempSync(join(tmpdir(), 'flock-mnist-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initNodeBackend();
});

function histogram(labels: Uint8Array): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const label of labels) counts[label]!++;
  return counts;
}

describe('MNIST loader', () => {
  it('loads the 10,000 test examples scaled to [0, 1] with sane labels', async () => {
    const test = await loadMnist('test');
    expect(test.count).toBe(10_000);
    expect(test.images.length).toBe(10_000 * MNIST_PIXELS);
    expect(test.labels.length).toBe(10_000);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const value of test.images) {
      if (value < min) min = value;
      if (value > max) max = value;
      sum += value;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    const mean = sum / test.images.length;
    expect(mean).toBeGreaterThan(0.12); // MNIST's mean pixel intensity is ~0.13
    expect(mean).toBeLessThan(0.14);
    // Official test-set label counts.
    expect(histogram(test.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    expect(await loadMnist('test')).toBe(test); // cached per process
  });

  it('loads the 60,000 training examples', async () => {
    const train = await loadMnist('train');
    expect(train.count).toBe(60_000);
    expect(train.images.length).toBe(60_000 * MNIST_PIXELS);
    expect(histogram(train.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(Array.from(train.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
  });

  it('reads a range without loading the whole split, equal to the same slice of the full split', async () => {
    const part = await readMnist('test', { start: 100, count: 50 });
    const full = await loadMnist('test');
    const slice = sliceMnist(full, 100, 50);
    expect(part.count).toBe(50);
    expect(part.images).toEqual(slice.images);
    expect(part.labels).toEqual(slice.labels);
    expect(slice.images.buffer).toBe(full.images.buffer); // a view, no copy
    expect(() => sliceMnist(full, 9_990, 20)).toThrow(RangeError);
    await expect(readMnist('test', { start: 9_999, count: 2 })).rejects.toThrow(RangeError);
  });

  it('builds one-hot labels and tensors', async () => {
    expect(Array.from(oneHotLabels(new Uint8Array([2, 0]), 3))).toEqual([0, 0, 1, 1, 0, 0]);
    const ys = oneHot(new Uint8Array([9, 1]));
    expect(ys.shape).toEqual([2, 10]);
    expect(Array.from(await ys.argMax(1).data())).toEqual([9, 1]);
    ys.dispose();
    const { xs, ys: labels } = mnistTensors(sliceMnist(await loadMnist('test'), 0, 32));
    expect(xs.shape).toEqual([32, 784]);
    expect(labels.shape).toEqual([32, 10]);
    xs.dispose();
    labels.dispose();
  });

  it('rejects corrupt files with clear errors', async () => {
    const images = readFileSync(join(mnistDataDir(), 't10k-images-idx3-ubyte'));
    const labels = readFileSync(join(mnistDataDir(), 't10k-labels-idx1-ubyte'));

    const badMagic = Buffer.from(images);
    badMagic.writeUInt32BE(0x00000801, 0);
    expect(() => parseIdxImages(badMagic, 'x.idx')).toThrow('x.idx: bad magic number 0x00000801, expected 0x00000803');
    expect(() => parseIdxLabels(images, 'images-as-labels')).toThrow(/bad magic number 0x00000803, expected 0x00000801/);
    expect(() => parseIdxImages(images.subarray(0, 10))).toThrow(/too short/);
    expect(() => parseIdxImages(images.subarray(0, images.length - 1), 'cut')).toThrow(
      'cut: header says 10000 images of 28x28 (7840016 bytes) but the file has 7840015 bytes',
    );

    const truncated = join(dir, 'truncated-images');
    writeFileSync(truncated, images.subarray(0, 16 + 5 * 784));
    const labelsPath = join(dir, 'labels');
    writeFileSync(labelsPath, labels);
    await expect(readMnistFiles(truncated, labelsPath)).rejects.toThrow(/header says 10000 images/);

    const wrongCount = Buffer.from(labels.subarray(0, 8 + 5));
    wrongCount.writeUInt32BE(5, 4);
    const fivePath = join(dir, 'five-labels');
    writeFileSync(fivePath, wrongCount);
    await expect(readMnistFiles(join(mnistDataDir(), 't10k-images-idx3-ubyte'), fivePath)).rejects.toThrow(/10000 images but .* 5 labels/);

    const badLabel = Buffer.from(labels);
    badLabel[8] = 12;
    const badLabelPath = join(dir, 'bad-label');
    writeFileSync(badLabelPath, badLabel);
    await expect(readMnistFiles(join(mnistDataDir(), 't10k-images-idx3-ubyte'), badLabelPath)).rejects.toThrow(/label 12 of example 0/);
  });
});
