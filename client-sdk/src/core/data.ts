/**
 * Local data: where the examples come from (a pluggable DataSource) and how they become tensors.
 * Examples never leave the device: the SDK only reads them to train and to evaluate locally.
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_TEST_FRACTION } from './defaults.js';

/** Features or labels: a tensor, nested number arrays, or one array/typed array per example. */
export type ExampleValues = tf.Tensor | tf.TensorLike | readonly ArrayLike<number>[];

/**
 * A set of local examples. `xs` has one row per example (it is reshaped to the model's input shape
 * when the sizes agree, e.g. 784 values for a [28, 28, 1] input). `ys` is either one row of targets
 * per example (one-hot for classifiers) or one class index per example, which the SDK one-hot
 * encodes for a model with several output units.
 *
 * Tensors you return stay yours: the SDK never disposes a tensor it did not create.
 */
export interface LocalExamples {
  xs: ExampleValues;
  ys: ExampleValues;
}

/** Where a client's local examples come from. Called at each round, evaluation and fine-tuning. */
export interface DataSource {
  /** Examples to train on (rounds and personalization). null or empty when there are none. */
  trainingData(): LocalExamples | null | Promise<LocalExamples | null>;
  /** Held-out examples, never trained on, for testing models before adopting them. */
  testData(): LocalExamples | null | Promise<LocalExamples | null>;
  /** Optional cheap count, so the client can report `no_data` without building tensors. */
  countTrainingExamples?(): number | Promise<number>;
}

function exampleCount(values: ExampleValues): number {
  if (values instanceof tf.Tensor) return values.shape[0] ?? 0;
  if (ArrayBuffer.isView(values)) return (values as ArrayLike<number>).length;
  return Array.isArray(values) ? values.length : 0;
}

export interface ArrayDataSourceInit {
  train: LocalExamples;
  test?: LocalExamples | null;
}

/** An in-memory data source over arrays (or tensors) that the app can replace at any time. */
export class ArrayDataSource implements DataSource {
  private train: LocalExamples;
  private test: LocalExamples | null;

  constructor(init: ArrayDataSourceInit) {
    this.train = init.train;
    this.test = init.test ?? null;
  }

  /**
   * Splits examples into train and held-out test sets: every k-th example goes to test, so the
   * split is deterministic and keeps the class mix of ordered data.
   */
  static fromExamples(xs: readonly ArrayLike<number>[], ys: readonly (ArrayLike<number> | number)[], options: { testFraction?: number } = {}): ArrayDataSource {
    if (xs.length !== ys.length) throw new Error(`fromExamples: ${xs.length} feature rows but ${ys.length} labels`);
    const testFraction = options.testFraction ?? DEFAULT_TEST_FRACTION;
    if (!(testFraction >= 0 && testFraction < 1)) throw new RangeError('testFraction must be in [0, 1)');
    const every = testFraction > 0 ? Math.max(2, Math.round(1 / testFraction)) : Infinity;
    const train: LocalExamples = { xs: [] as ArrayLike<number>[], ys: [] as (ArrayLike<number> | number)[] };
    const test: LocalExamples = { xs: [] as ArrayLike<number>[], ys: [] as (ArrayLike<number> | number)[] };
    xs.forEach((row, i) => {
      const target = (i + 1) % every === 0 ? test : train;
      (target.xs as ArrayLike<number>[]).push(row);
      (target.ys as (ArrayLike<number> | number)[]).push(ys[i]!);
    });
    return new ArrayDataSource({ train, test: exampleCount(test.xs) > 0 ? test : null });
  }

  /** Replaces the data (e.g. after the user produced new examples). */
  replace(init: ArrayDataSourceInit): void {
    this.train = init.train;
    this.test = init.test ?? null;
  }

  trainingData(): LocalExamples | null {
    return exampleCount(this.train.xs) > 0 ? this.train : null;
  }

  testData(): LocalExamples | null {
    return this.test && exampleCount(this.test.xs) > 0 ? this.test : null;
  }

  countTrainingExamples(): number {
    return exampleCount(this.train.xs);
  }
}

/** Examples as tensors shaped for a model; `dispose()` frees what the SDK created. */
export interface ExampleTensors {
  xs: tf.Tensor;
  ys: tf.Tensor;
  count: number;
  dispose(): void;
}

function isRowList(values: ExampleValues): values is readonly ArrayLike<number>[] {
  if (!Array.isArray(values) || values.length === 0) return false;
  const first: unknown = values[0];
  // Rows of plain numbers or typed arrays; deeper nesting goes to tf.tensor as is.
  return ArrayBuffer.isView(first) || (Array.isArray(first) && (first.length === 0 || typeof first[0] === 'number'));
}

/** Packs rows into one float32 tensor [n, rowLength] with a single copy. */
function rowsToTensor(rows: readonly ArrayLike<number>[]): tf.Tensor {
  const width = rows[0]!.length;
  const flat = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (row.length !== width) throw new Error(`example ${i} has ${row.length} values, the first has ${width}`);
    flat.set(row, i * width);
  });
  return tf.tensor2d(flat, [rows.length, width]);
}

/**
 * Features or labels as a tensor: the input itself when it is one, else a new float32 tensor
 * (rows of numbers or typed arrays are packed with one copy).
 */
export function toFeatureTensor(values: ExampleValues): tf.Tensor {
  if (values instanceof tf.Tensor) return values;
  return isRowList(values) ? rowsToTensor(values) : tf.tensor(values, undefined, 'float32');
}

function toTensor(values: ExampleValues, owned: tf.Tensor[]): tf.Tensor {
  const tensor = toFeatureTensor(values);
  if (tensor !== values) owned.push(tensor);
  return tensor;
}

function knownDims(shape: (number | null)[]): number[] | null {
  return shape.every((dim): dim is number => dim !== null) ? shape : null;
}

/**
 * Converts examples to float32 tensors shaped for `model`: features reshaped to its input shape
 * when the sizes agree, class indices one-hot encoded for a model with several output units.
 */
export function toExampleTensors(examples: LocalExamples, model: tf.LayersModel): ExampleTensors {
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(tensor: T): T => {
    owned.push(tensor);
    return tensor;
  };
  try {
    let xs = toTensor(examples.xs, owned);
    let ys = toTensor(examples.ys, owned);
    const count = xs.shape[0] ?? 0;
    if ((ys.shape[0] ?? 0) !== count) throw new Error(`${count} feature rows but ${ys.shape[0] ?? 0} labels`);

    const inputShape = knownDims(model.inputs[0]!.shape.slice(1));
    if (inputShape && xs.shape.length > 0) {
      const exampleShape = xs.shape.slice(1);
      const sameSize = tf.util.sizeFromShape(exampleShape) === tf.util.sizeFromShape(inputShape);
      if (sameSize && !tf.util.arraysEqual(exampleShape, inputShape)) xs = own(tf.reshape(xs, [count, ...inputShape]));
    }
    if (xs.dtype !== 'float32') xs = own(tf.cast(xs, 'float32'));

    const outputUnits = model.outputs[0]!.shape[model.outputs[0]!.shape.length - 1] ?? 1;
    if (ys.rank === 1) {
      ys = outputUnits > 1 ? own(tf.oneHot(own(tf.cast(ys, 'int32')), outputUnits)) : own(tf.reshape(ys, [count, 1]));
    }
    if (ys.dtype !== 'float32') ys = own(tf.cast(ys, 'float32'));

    return { xs, ys, count, dispose: () => tf.dispose(owned) };
  } catch (error) {
    tf.dispose(owned);
    throw error;
  }
}

/** Reads and converts a data source's training or test examples; null when there are none. */
export async function loadExampleTensors(
  read: () => LocalExamples | null | Promise<LocalExamples | null>,
  model: tf.LayersModel,
): Promise<ExampleTensors | null> {
  const examples = await read();
  if (!examples || exampleCount(examples.xs) === 0) return null;
  return toExampleTensors(examples, model);
}
