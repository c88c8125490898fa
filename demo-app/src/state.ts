/** The page's state (the DemoState the e2e tests read): how it starts, and what outlives a reload. */
import type { DemoState } from './demo-state.js';

/** Bytes uploaded add up across reloads. */
const BYTES_UPLOADED_KEY = 'flock-demo-bytes-uploaded';

export function initialState(): DemoState {
  return {
    ready: false,
    backend: null,
    clientId: null,
    status: 'idle',
    conditions: { idle: 'unknown', charging: 'unknown', unmetered: 'unknown' },
    eligible: false,
    globalVersion: null,
    personalVersion: null,
    fineTunedEpochs: 0,
    exampleCount: 0,
    drawnCount: 0,
    roundsTrained: 0,
    roundsAbandoned: 0,
    bytesUploaded: Number(localStorage.getItem(BYTES_UPLOADED_KEY) ?? 0) || 0,
    lastEvaluation: null,
    statusHistory: [],
    errors: [],
  };
}

export function addBytesUploaded(state: DemoState, bytes: number): void {
  state.bytesUploaded += bytes;
  localStorage.setItem(BYTES_UPLOADED_KEY, String(state.bytesUploaded));
}
