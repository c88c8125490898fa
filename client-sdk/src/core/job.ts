/**
 * The one piece of work a client runs at a time (a round or an evaluation): its phase, which the
 * client's status shows, and its cancellation, which the job checks between steps and batches.
 */
import type * as tf from '@tensorflow/tfjs';
import type { RoundAbandonedEvent } from './client-types.js';
import { loadExampleTensors, type DataSource, type ExampleTensors } from './data.js';
import { errorMessage, FlockClientError } from './errors.js';

/** Why a job stops early (for a round: the reason of its `roundAbandoned` event). */
export type CancelReason = RoundAbandonedEvent['reason'];

export type JobPhase = 'training' | 'uploading' | 'evaluating';

export class Job {
  private currentPhase: JobPhase;
  private reason: CancelReason | null = null;
  /** Settles when the job has ended, whatever the outcome. */
  done: Promise<void> = Promise.resolve();

  constructor(
    readonly kind: 'round' | 'evaluation',
    readonly roundId: string | null,
    private readonly onPhaseChange: () => void = () => {},
  ) {
    this.currentPhase = kind === 'round' ? 'training' : 'evaluating';
  }

  get phase(): JobPhase {
    return this.currentPhase;
  }

  enter(phase: JobPhase): void {
    this.currentPhase = phase;
    this.onPhaseChange();
  }

  /** Asks the job to stop; the first reason given wins. */
  cancel(reason: CancelReason): void {
    this.reason ??= reason;
  }

  get cancelled(): boolean {
    return this.reason !== null;
  }

  get cancelReason(): CancelReason | null {
    return this.reason;
  }
}

/** The data source's training or test examples as tensors for `model` (null when there are none). */
export async function readExamples(dataSource: DataSource, split: 'training' | 'test', model: tf.LayersModel): Promise<ExampleTensors | null> {
  try {
    return await loadExampleTensors(() => (split === 'training' ? dataSource.trainingData() : dataSource.testData()), model);
  } catch (error) {
    throw new FlockClientError('data_source_failed', `reading ${split} examples failed: ${errorMessage(error)}`, { cause: error });
  }
}
