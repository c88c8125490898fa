// What the demo page exposes on `window.flockDemo` (types only: the e2e tests import them too).
import type { ClientStatus, ConditionValue, EvaluationReport } from '@flock/client-sdk';

/** What the page shows; also readable by tests through `window.flockDemo.state`. */
export interface DemoState {
  ready: boolean;
  backend: string | null;
  /** The id the coordinator welcomed this device as (its key's thumbprint); null before the first connection. */
  clientId: string | null;
  status: ClientStatus | 'no data';
  conditions: { idle: ConditionValue; charging: ConditionValue; unmetered: ConditionValue };
  eligible: boolean;
  globalVersion: number | null;
  personalVersion: number | null;
  fineTunedEpochs: number;
  exampleCount: number;
  drawnCount: number;
  roundsTrained: number;
  roundsAbandoned: number;
  bytesUploaded: number;
  lastEvaluation: EvaluationReport | null;
  statusHistory: ClientStatus[];
  errors: string[];
}

export interface DemoHooks {
  state: DemoState;
  /** Predicted digits for the first `count` test images of the MNIST slice (the same on every page). */
  predictDigits(count: number): Promise<number[]>;
}
