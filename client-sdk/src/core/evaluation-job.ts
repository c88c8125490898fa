/**
 * Testing a newly published global model on the device (Wang et al. 2019): evaluate it and the
 * personalized model on held-out local data, decide adoption, fine-tune what is adopted (or, when
 * the app asks, a rejected model, then test it again), persist the result, and build the aggregate
 * report for the coordinator. Returns what happened; the client reports it.
 */
import type * as tf from '@tensorflow/tfjs';
import { EVALUATION_REPORT_LIMITS, type EvaluationReport } from '../protocol/model-messages.js';
import { toleranceAdoption, type AdoptionDecision, type AdoptionPolicy } from './adoption.js';
import type { AdoptionOptions, FederatedClientOptions, ModelAdoptedEvent, TrainingProgress } from './client-types.js';
import type { DataSource, ExampleTensors } from './data.js';
import {
  DEFAULT_EVALUATION_BATCH_SIZE,
  DEFAULT_FINE_TUNE_BATCH_SIZE,
  DEFAULT_FINE_TUNE_EPOCHS,
  DEFAULT_FINE_TUNE_LEARNING_RATE,
  DEFAULT_ON_REJECTED,
} from './defaults.js';
import { errorMessage, FlockClientError } from './errors.js';
import { readExamples, type Job } from './job.js';
import type { LocalState } from './local-state.js';
import type { LossSpec } from './losses.js';
import { instantiateModel, type StoredModel } from './model.js';
import { copyLayerWeights, dittoUpdate, sameWeightShapes, trainOnlyLayers, type PersonalizationSettings } from './personalization.js';
import { evaluateModel, trainModel, type BatchProgress, type EvaluationResult, type LocalTrainingPlan } from './training.js';

/** How the client tests and adopts models: the app's options with their defaults filled in. */
export interface EvaluationSettings {
  adoptionPolicy: AdoptionPolicy;
  onRejected: NonNullable<AdoptionOptions['onRejected']>;
  /** Local fine-tuning of an adopted model (`epochs` 0: none). */
  fineTuning: LocalTrainingPlan;
  evaluationBatchSize: number;
}

export function evaluationSettings(options: Pick<FederatedClientOptions, 'adoption' | 'personalization' | 'evaluationBatchSize'>): EvaluationSettings {
  const { adoption, personalization } = options;
  return {
    adoptionPolicy: adoption?.policy ?? toleranceAdoption({ tolerance: adoption?.tolerance, metric: adoption?.metric }),
    onRejected: adoption?.onRejected ?? DEFAULT_ON_REJECTED,
    fineTuning: {
      epochs: personalization?.fineTuneEpochs ?? DEFAULT_FINE_TUNE_EPOCHS,
      batchSize: personalization?.batchSize ?? DEFAULT_FINE_TUNE_BATCH_SIZE,
      learningRate: personalization?.learningRate ?? DEFAULT_FINE_TUNE_LEARNING_RATE,
    },
    evaluationBatchSize: options.evaluationBatchSize ?? DEFAULT_EVALUATION_BATCH_SIZE,
  };
}

export interface EvaluationJobContext extends EvaluationSettings {
  job: Job;
  /** The method in force (the app's options, or the latest plan's). */
  personalization: PersonalizationSettings;
  state: Pick<LocalState, 'personalModel' | 'adopt' | 'recordEvaluation'>;
  dataSource: DataSource;
  loss: LossSpec;
  /** The global model of a version, from the local cache or fetched. */
  globalModel(version: number): Promise<StoredModel>;
  progress(progress: TrainingProgress): void;
  error(error: FlockClientError): void;
}

export interface EvaluationOutcome {
  /** The aggregate numbers for the coordinator; null when the device has no held-out data. */
  report: EvaluationReport | null;
  decision: AdoptionDecision;
  /** Set when the model was adopted. */
  adopted: ModelAdoptedEvent | null;
}

/** Test results of a candidate global model and the decision about it. */
interface Verdict {
  decision: AdoptionDecision;
  globalEval: EvaluationResult | null;
  personalEval: EvaluationResult | null;
  /** The candidate as adopted (after fine-tuning when it was re-tested). */
  adoptedEval: EvaluationResult | null;
  fineTunedEpochs: number;
}

/** Tests global model `version`; null when the job was cancelled (the version stays to be tested). */
export async function runEvaluation(version: number, context: EvaluationJobContext): Promise<EvaluationOutcome | null> {
  const global = await context.globalModel(version);
  if (context.job.cancelled) return null;
  if (context.personalization.method !== 'fine-tune') return runPersonalUpdate(version, global, context);
  const candidate = await instantiateModel(global);
  let test: ExampleTensors | null = null;
  let adopted = false;
  try {
    test = await readExamples(context.dataSource, 'test', candidate);
    const verdict = await judge(candidate, test, version, context);
    if (!verdict) return null;
    if (verdict.decision.adopt) {
      await context.state.adopt(candidate, global, verdict.fineTunedEpochs);
      adopted = true;
    }
    const report = evaluationReport(version, test, verdict);
    await context.state.recordEvaluation(version, report);
    const { decision, fineTunedEpochs, adoptedEval } = verdict;
    return { report, decision, adopted: adopted ? { version, fineTunedEpochs, evaluation: adoptedEval } : null };
  } finally {
    test?.dispose();
    if (!adopted) candidate.dispose();
  }
}

/** Evaluates the candidate against the personalized model, decides, and fine-tunes what may be adopted. */
async function judge(candidate: tf.LayersModel, test: ExampleTensors | null, version: number, context: EvaluationJobContext): Promise<Verdict | null> {
  const { job, adoptionPolicy } = context;
  const globalEval = test ? await evaluate(candidate, test, context) : null;
  const personalEval = test ? await evaluatePersonal(test, context) : null;
  if (job.cancelled) return null;

  const decision: AdoptionDecision = globalEval
    ? adoptionPolicy({ global: globalEval, personal: personalEval })
    : { adopt: true, reason: 'no held-out local data to test on' };
  const fineTuneRejected = !decision.adopt && context.onRejected === 'fineTuneGlobal';
  if (!decision.adopt && !fineTuneRejected) return { decision, globalEval, personalEval, adoptedEval: globalEval, fineTunedEpochs: 0 };

  const fineTunedEpochs = await fineTune(candidate, version, context);
  if (job.cancelled) return null;
  const adoptedEval = test && fineTunedEpochs > 0 ? await evaluate(candidate, test, context) : globalEval;
  if (!fineTuneRejected || !adoptedEval) return { decision, globalEval, personalEval, adoptedEval, fineTunedEpochs };
  const retest = adoptionPolicy({ global: adoptedEval, personal: personalEval });
  const retested = { adopt: retest.adopt, reason: `after local fine-tuning: ${retest.reason}` };
  return { decision: retested, globalEval, personalEval, adoptedEval, fineTunedEpochs };
}

function evaluate(model: tf.LayersModel, test: ExampleTensors, context: EvaluationJobContext): Promise<EvaluationResult> {
  return evaluateModel(model, test.xs, test.ys, context.loss, context.evaluationBatchSize);
}

/** The personalized model on the same data; null without one, or when it cannot be evaluated. */
async function evaluatePersonal(test: ExampleTensors, context: EvaluationJobContext): Promise<EvaluationResult | null> {
  const personal = context.state.personalModel;
  if (!personal) return null;
  try {
    return await evaluate(personal.model, test, context);
  } catch (error) {
    // A bundled model with another architecture cannot be compared: treat it as absent.
    context.error(new FlockClientError('evaluation_failed', `the personalized model cannot be evaluated: ${errorMessage(error)}`, { cause: error }));
    return null;
  }
}

/** Fine-tunes `model` in place on local training data; returns the epochs completed. */
async function fineTune(model: tf.LayersModel, version: number, context: EvaluationJobContext): Promise<number> {
  const plan = context.fineTuning;
  if (plan.epochs <= 0) return 0;
  const examples = await readExamples(context.dataSource, 'training', model);
  if (!examples) return 0;
  try {
    const result = await trainModel(model, examples.xs, examples.ys, plan, {
      loss: context.loss,
      shouldStop: () => context.job.cancelled,
      onBatchEnd: (progress) => context.progress({ ...progress, purpose: 'personalization', roundId: null, modelVersion: version }),
    });
    return result.epochsCompleted;
  } finally {
    examples.dispose();
  }
}

/**
 * Ditto and personal-layers: the device always keeps a model of its own. Test the new global model
 * and the personal model in use, then derive the next personal model from both: Ditto trains the
 * personal model towards the new global one; personal-layers takes the new shared layers, keeps its
 * own personal layers and trains them. The adoption policy does not apply (nothing is replaced).
 */
async function runPersonalUpdate(version: number, global: StoredModel, context: EvaluationJobContext): Promise<EvaluationOutcome | null> {
  const { job, personalization } = context;
  const candidate = await instantiateModel(global);
  const next = await instantiateModel(global);
  let test: ExampleTensors | null = null;
  let kept = false;
  try {
    test = await readExamples(context.dataSource, 'test', candidate);
    const globalEval = test ? await evaluate(candidate, test, context) : null;
    const personalEval = test ? await evaluatePersonal(test, context) : null;
    if (job.cancelled) return null;
    const previous = context.state.personalModel?.model ?? null;
    const ditto = personalization.method === 'ditto';
    // Ditto continues from its own model; personal-layers from the new global body with its own head.
    if (previous && ditto && sameWeightShapes(previous, next)) next.setWeights(previous.getWeights());
    if (previous && !ditto) copyLayerWeights(previous, next, personalization.personalLayers);
    const epochs = await trainPersonal(next, candidate, version, context);
    if (job.cancelled) return null;
    const adoptedEval = test ? await evaluate(next, test, context) : null;
    await context.state.adopt(next, global, epochs);
    kept = true;
    const decision: AdoptionDecision = ditto
      ? { adopt: false, reason: `ditto: the personal model trained towards global version ${version} (lambda ${personalization.dittoLambda})` }
      : { adopt: true, reason: `personal-layers: shared layers of global version ${version}, own ${personalization.personalLayers.join(', ')}` };
    const report = evaluationReport(version, test, { decision, globalEval, personalEval, adoptedEval, fineTunedEpochs: epochs });
    await context.state.recordEvaluation(version, report);
    // personal-layers adopts the new shared layers; Ditto keeps its model (moved, not replaced).
    return { report, decision, adopted: ditto ? null : { version, fineTunedEpochs: epochs, evaluation: adoptedEval } };
  } finally {
    test?.dispose();
    candidate.dispose();
    if (!kept) next.dispose();
  }
}

/** The method's local training of the next personal model; returns the epochs completed. */
async function trainPersonal(next: tf.LayersModel, global: tf.LayersModel, version: number, context: EvaluationJobContext): Promise<number> {
  const { personalization } = context;
  const plan = personalization.training;
  if (plan.epochs <= 0) return 0;
  const examples = await readExamples(context.dataSource, 'training', next);
  if (!examples) return 0;
  const options = {
    loss: context.loss,
    shouldStop: () => context.job.cancelled,
    onBatchEnd: (progress: BatchProgress) => context.progress({ ...progress, purpose: 'personalization' as const, roundId: null, modelVersion: version }),
  };
  try {
    const result =
      personalization.method === 'ditto'
        ? await dittoUpdate(next, global, personalization.dittoLambda, examples.xs, examples.ys, plan, options)
        : await trainOnlyLayers(next, personalization.personalLayers, examples.xs, examples.ys, plan, options);
    return result.epochsCompleted;
  } finally {
    examples.dispose();
  }
}

/** Aggregates only: losses, accuracies and a count, never examples or predictions. */
function evaluationReport(version: number, test: ExampleTensors | null, verdict: Verdict): EvaluationReport | null {
  const { globalEval, personalEval, decision } = verdict;
  if (!globalEval || !test) return null;
  return {
    modelVersion: version,
    numExamples: Math.min(test.count, EVALUATION_REPORT_LIMITS.maxExamples),
    globalLoss: globalEval.loss,
    globalAccuracy: globalEval.accuracy,
    personalLoss: personalEval?.loss ?? null,
    personalAccuracy: personalEval?.accuracy ?? null,
    adopted: decision.adopt,
  };
}
