/** Messages between the serving pool (main thread) and its inference worker threads. */
import type { WeightSpec } from '@flock/client-sdk/protocol';

/** A model's inputs and outputs as the worker found them: shapes with -1 (null in Keras) for the batch. */
export interface ModelSignature {
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; shape: number[] }[];
}

export type WorkerRequest =
  | { type: 'load'; version: number; topology: unknown; weightSpecs: WeightSpec[]; weights: Uint8Array }
  | { type: 'unload'; version: number }
  /** `input`: `rows` rows of the model's (single) input, row-major. */
  | { type: 'predict'; id: number; version: number; rows: number; input: Float32Array };

export type WorkerReply =
  | { type: 'ready'; backend: string }
  | { type: 'loaded'; version: number; signature: ModelSignature }
  | { type: 'load-failed'; version: number; message: string }
  /** One flat array per model output, `rows` rows each. */
  | { type: 'predicted'; id: number; outputs: Float32Array[] }
  | { type: 'predict-failed'; id: number; message: string };
