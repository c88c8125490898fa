/** Messages between the simulator's main thread and its client-hosting worker threads. */
import type { PersonalizationOptions, RoundTimings } from '@flock/client-sdk';
import type { Attack } from './byzantine.js';

export interface SimulatedClientData {
  /** Client number in 0..K-1 (also fixes its client id). */
  index: number;
  /** n * 784 pixels in [0, 1]. */
  trainImages: Float32Array;
  trainLabels: Uint8Array;
  /** Held-out local test examples (may be empty). */
  testImages: Float32Array;
  testLabels: Uint8Array;
  /** How this client poisons its uploads (its labels are already flipped for label-flip); null: honest. */
  attack: Attack | null;
}

export interface WorkerInit {
  serverUrl: string;
  clientToken: string;
  seed: number;
  /** Probability that a selected client's conditions flip to 'no' mid-training. */
  dropout: number;
  /**
   * Fraction of clients that receive each model publication and so run the SDK's local test and
   * adoption of that version (chosen per version by a seeded hash); 0 = none, 1 = all.
   */
  localEvaluation: number;
  /** Personalization of the clients' own models (the plan names the method; this gives the local epochs). */
  personalization: PersonalizationOptions | null;
  /** Connect each device from its own loopback source address (the coordinator runs in-process on loopback). */
  sourceAddresses: boolean;
  /** Devices fetch new versions as int8 deltas from the one they hold (on with --compression). */
  downloadDeltas: boolean;
  clients: SimulatedClientData[];
}

export type MainToWorker = { type: 'round'; round: number } | { type: 'stop' };

export type WorkerToMain =
  | { type: 'ready'; clients: number; backend: string }
  | { type: 'uploaded'; round: number; client: number; bytes: number; accepted: boolean; timings: RoundTimings }
  | { type: 'dropped'; round: number; client: number; reason: string }
  | { type: 'clientError'; client: number; code: string; message: string }
  | { type: 'stopped' }
  | { type: 'fatal'; message: string };
