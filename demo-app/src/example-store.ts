/**
 * The user's labelled examples, kept on the device in IndexedDB (never uploaded: the SDK sends only
 * weight deltas and aggregate test numbers). Pixels are stored as 784 bytes (0-255).
 */
import { PIXEL_COUNT } from './digit-pad.js';

export interface LabelledExample {
  pixels: Uint8Array;
  label: number;
  source: 'drawn' | 'mnist';
}

const DATABASE_NAME = 'flock-demo-examples';
const STORE_NAME = 'examples';

function requestResult<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}

function transactionDone(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB transaction failed'));
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
  });
}

export class ExampleStore {
  private constructor(private readonly database: IDBDatabase) {}

  static async open(): Promise<ExampleStore> {
    const request = indexedDB.open(DATABASE_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE_NAME, { autoIncrement: true });
    return new ExampleStore(await requestResult(request));
  }

  async all(): Promise<LabelledExample[]> {
    const transaction = this.database.transaction(STORE_NAME, 'readonly');
    const records = (await requestResult(transaction.objectStore(STORE_NAME).getAll())) as LabelledExample[];
    return records.filter((record) => record.pixels instanceof Uint8Array && record.pixels.length === PIXEL_COUNT);
  }

  async add(examples: readonly LabelledExample[]): Promise<void> {
    const transaction = this.database.transaction(STORE_NAME, 'readwrite');
    const store = transaction.objectStore(STORE_NAME);
    for (const example of examples) store.add(example);
    await transactionDone(transaction);
  }

  async clear(): Promise<void> {
    const transaction = this.database.transaction(STORE_NAME, 'readwrite');
    transaction.objectStore(STORE_NAME).clear();
    await transactionDone(transaction);
  }
}

/** Bytes 0-255 to floats in [0, 1]. */
export function toUnitPixels(pixels: Uint8Array): Float32Array {
  const values = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) values[i] = pixels[i]! / 255;
  return values;
}

/** Floats in [0, 1] to bytes. */
export function toBytePixels(pixels: Float32Array): Uint8Array {
  const bytes = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) bytes[i] = Math.round(255 * Math.min(1, Math.max(0, pixels[i]!)));
  return bytes;
}
