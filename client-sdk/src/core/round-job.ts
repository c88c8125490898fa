/**
 * One federated round on the device: fetch the round's global model (unless cached), train it on
 * local data with the round's plan, compute the delta (trained minus received weights), check it
 * and upload it. Only the delta leaves the device. Returns what happened; the client reports it.
 */
import type { RoundConfiguration, UpdateUpload } from '../protocol/round-messages.js';
import type { FederatedClientOptions, TrainingProgress, UploadedEvent } from './client-types.js';
import type { Connection } from './connection.js';
import type { DataSource, ExampleTensors } from './data.js';
import { compressDelta } from './compress-delta.js';
import { allFinite, clipDelta, computeDelta, encodedBytes } from './delta.js';
import { FlockClientError } from './errors.js';
import { readExamples, type CancelReason, type Job } from './job.js';
import type { LossSpec } from './losses.js';
import { uploadDelayMs } from '../protocol/pace.js';
import { waitUnlessStopped } from './pace.js';
import type { LocalState } from './local-state.js';
import { copyLayerWeights } from './personalization.js';
import { personalTensorMask, sharedTensors } from '../protocol/personalization.js';
import { instantiateModel, readWeights, splitStoredWeights, type StoredModel } from './model.js';
import { monotonicNow } from './runtime.js';
import { trainModel } from './training.js';
import { refusalError, runSecureAggregation } from './secure-round.js';

export interface RoundJobContext {
  job: Job;
  /** The coordinator's upload limit comes with its welcome. */
  connection: Pick<Connection, 'connected' | 'welcome' | 'upload' | 'secAgg' | 'secAggInbox'>;
  dataSource: DataSource;
  loss: LossSpec;
  transformDelta: FederatedClientOptions['transformDelta'];
  /**
   * Layers that stay on the device in this round: the plan's personal layers (the coordinator
   * expects the other tensors only). Empty: every tensor is shared.
   */
  personalLayers: readonly string[];
  /** The personal model (its personal layers are trained on, and kept after, a personal-layers round). */
  state: Pick<LocalState, 'personalModel' | 'keepPersonalLayers'>;
  /** The global model of a version, from the local cache or fetched. */
  globalModel(version: number): Promise<StoredModel>;
  progress(progress: TrainingProgress): void;
  /** Where top-k error feedback's residual persists. */
  residual: Pick<LocalState, 'residual' | 'saveResidual'>;
  /** Failures that do not stop the round (persisting the residual). */
  reportError(error: FlockClientError): void;
}

/** Uploaded (accepted or rejected by the coordinator), or abandoned before sending anything. */
export type RoundOutcome = { uploaded: UploadedEvent } | Abandoned;

/** `error`: what went wrong, when abandoning is the client's own failure. */
interface Abandoned {
  abandoned: CancelReason;
  error?: FlockClientError;
}

interface LocalUpdate {
  /** Every tensor, personal ones included (they are left out of the upload). */
  trained: Float32Array[];
  trainLoss: number;
  numExamples: number;
}

export async function runRound(configuration: RoundConfiguration, context: RoundJobContext): Promise<RoundOutcome> {
  const { job, connection } = context;
  const downloadStarted = monotonicNow();
  const global = await context.globalModel(configuration.modelVersion);
  const downloadMs = monotonicNow() - downloadStarted;
  if (job.cancelled) return { abandoned: job.cancelReason! };

  const trainingStarted = monotonicNow();
  const update = await trainLocally(configuration, global, context);
  if ('abandoned' in update) return update;
  const encodeStarted = monotonicNow();
  const residual = configuration.plan.compression?.kind === 'topk' ? await loadResidual(global, configuration, context) : null;
  const prepared = prepareUpload(configuration, global, update, context, residual);
  if ('abandoned' in prepared) return prepared;
  if (job.cancelled) return { abandoned: job.cancelReason! };
  // Pace steering: the coordinator said when it wants this upload.
  const waitMs = uploadDelayMs(configuration.reportWindow, Date.now(), Math.random());
  if (waitMs > 0) await waitUnlessStopped(waitMs, () => job.cancelled || !connection.connected);
  if (job.cancelled) return { abandoned: job.cancelReason! };
  if (!connection.connected) return { abandoned: 'disconnected' };

  job.enter('uploading');
  const uploadStarted = monotonicNow();
  const { roundId, modelVersion, numExamples, trainLoss } = prepared.upload;
  const timings = (): UploadedEvent['timings'] => ({
    downloadMs,
    trainingMs: encodeStarted - trainingStarted,
    encodeMs: uploadStarted - encodeStarted,
    uploadMs: monotonicNow() - uploadStarted,
  });
  if (configuration.secureAggregation) {
    // A secure round: the delta leaves the device only masked (secure-round.ts).
    const secure = await runSecureAggregation(configuration, prepared.upload, { job, connection });
    if (secure.refused) throw refusalError(roundId, secure.refused);
    if (secure.stopped) return { abandoned: job.cancelReason ?? 'disconnected' };
    const secureAggregation = { bytesUp: secure.bytesUp, bytesDown: secure.bytesDown };
    return {
      uploaded: { roundId, modelVersion, bytes: secure.bytesUp, numExamples, trainLoss, result: { accepted: true }, timings: timings(), secureAggregation },
    };
  }
  const result = await connection.upload(prepared.upload, configuration.upload);
  const uploadTimings = timings();
  // Top-k: what the accepted upload left out waits for the next one (a refused upload changes nothing).
  if (result.accepted && prepared.residual) await keepResidual(prepared.residual, global, configuration, context);
  return { uploaded: { roundId, modelVersion, bytes: prepared.bytes, numExamples, trainLoss, result, timings: uploadTimings } };
}

/** Trains a fresh copy of `global` on the local training examples and reads the trained weights back. */
async function trainLocally(configuration: RoundConfiguration, global: StoredModel, context: RoundJobContext): Promise<LocalUpdate | Abandoned> {
  const { roundId, modelVersion, plan, deadlineAt } = configuration;
  const { job } = context;
  const model = await instantiateModel(global);
  const { personalLayers, state } = context;
  const personal = state.personalModel?.model;
  // FedPer: the shared body as received, on top of the device's own personal layers.
  if (personalLayers.length > 0 && personal) copyLayerWeights(personal, model, personalLayers);
  let examples: ExampleTensors | null = null;
  try {
    examples = await readExamples(context.dataSource, 'training', model);
    if (!examples) return { abandoned: 'no_data' };
    if (job.cancelled) return { abandoned: job.cancelReason! };
    const result = await trainModel(model, examples.xs, examples.ys, plan, {
      loss: context.loss,
      shouldStop: () => {
        if (!job.cancelled && Date.now() >= deadlineAt) job.cancel('deadline');
        return job.cancelled;
      },
      onBatchEnd: (progress) => context.progress({ ...progress, purpose: 'round', roundId, modelVersion }),
    });
    if (!result.completed) return { abandoned: job.cancelReason ?? 'training_failed' };
    if (personalLayers.length > 0) await state.keepPersonalLayers(model, personalLayers);
    return { trained: readWeights(model, global.weightSpecs), trainLoss: result.lastEpochLoss ?? NaN, numExamples: examples.count };
  } finally {
    examples?.dispose();
    model.dispose();
  }
}

/** The stored residual when it still fits this round; a store that fails to read it is reported, and the round goes on without it. */
async function loadResidual(global: StoredModel, configuration: RoundConfiguration, context: RoundJobContext): Promise<Float32Array[] | null> {
  try {
    return await context.residual.residual(global.weightSpecs, configuration.modelVersion);
  } catch (error) {
    const message = `reading the top-k residual failed: ${error instanceof Error ? error.message : String(error)}`;
    context.reportError(new FlockClientError('store_failed', message, { cause: error, roundId: configuration.roundId }));
    return null;
  }
}

async function keepResidual(residual: Float32Array[], global: StoredModel, configuration: RoundConfiguration, context: RoundJobContext): Promise<void> {
  try {
    await context.residual.saveResidual(residual, global.weightSpecs, configuration.modelVersion);
  } catch (error) {
    const message = `keeping the top-k residual failed: ${error instanceof Error ? error.message : String(error)}`;
    context.reportError(new FlockClientError('store_failed', message, { cause: error, roundId: configuration.roundId }));
  }
}

/**
 * The upload for `update`: its delta (transformed when the app asks), checked, then encoded as
 * binary in the plan's compression (top-k adds `residual` first and returns the new one).
 */
function prepareUpload(
  configuration: RoundConfiguration,
  global: StoredModel,
  update: LocalUpdate,
  context: RoundJobContext,
  residual: Float32Array[] | null,
): { upload: UpdateUpload; bytes: number; residual: Float32Array[] | null } | Abandoned {
  const { roundId, modelVersion, plan } = configuration;
  const { trainLoss } = update;
  // The update counts for at most the plan's cap (the coordinator clamps too): report no more.
  const numExamples = Math.min(update.numExamples, plan.maxExamplesPerUpdate ?? update.numExamples);
  // Personal layers never enter a delta: the upload carries the shared tensors only.
  const personal = personalTensorMask(global.weightSpecs, context.personalLayers);
  let delta = computeDelta(sharedTensors(update.trained, personal), sharedTensors(splitStoredWeights(global), personal));
  if (context.transformDelta) delta = context.transformDelta(delta, { roundId, modelVersion, numExamples });
  // DP rounds: the update leaves the device already within C (the coordinator clips again).
  if (plan.clipNorm !== undefined) delta = clipDelta(delta, plan.clipNorm);
  const failed = (message: string): Abandoned => ({ abandoned: 'training_failed', error: new FlockClientError('training_failed', message, { roundId }) });
  if (!Number.isFinite(trainLoss) || !allFinite(delta)) return failed(`training diverged (loss ${trainLoss}): not uploading`);
  const shapes = sharedTensors(global.weightSpecs, personal).map((spec) => spec.shape);
  const compressed = compressDelta(delta, shapes, plan.compression, residual);
  const encoded = compressed.encoded;
  const bytes = encodedBytes(encoded);
  const limit = context.connection.welcome?.maxUploadBytes;
  if (limit !== undefined && bytes > limit) return failed(`the delta has ${bytes} bytes, the coordinator accepts ${limit}`);
  return { upload: { roundId, modelVersion, numExamples, trainLoss, delta: encoded }, bytes, residual: compressed.residual };
}
