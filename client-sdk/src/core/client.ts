/**
 * FederatedClient: makes an app a federated participant. It connects to the coordinator, reports
 * whether the device is eligible (idle, charging, unmetered), trains the round's global model on
 * local data when selected, uploads only the weight delta, tests every newly published global model
 * on held-out local data before adopting it, and serves predictions from a personalized model that
 * persists across restarts. Examples and labels never leave the device.
 */
import * as tf from '@tensorflow/tfjs';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import {
  ClientEvent,
  PROTOCOL_VERSION,
  ServerEvent,
  type ClientToServerEvents,
  type EvaluationReport,
  type HandshakeAuth,
  type ModelPublished,
  type RoundClosed,
  type RoundConfiguration,
  type ServerToClientEvents,
  type UpdateResult,
  type UpdateUpload,
  type Welcome,
} from '../protocol/index.js';
import { ABANDON_REASONS, CONNECT_ERRORS, type AbandonReason, type ConnectError, type IneligibilityReason } from '../protocol/reasons.js';
import { clientIdSchema } from '../protocol/index.js';
import { encodeWeights } from '../protocol/weights.js';
import { toleranceAdoption, type AdoptionDecision, type AdoptionPolicy } from './adoption.js';
import { ConditionMonitor, DEFAULT_UNKNOWN_POLICY, type ConditionDetector, type ConditionValues, type UnknownConditionPolicy } from './conditions.js';
import { loadExampleTensors, toFeatureTensor, type DataSource, type ExampleTensors, type ExampleValues } from './data.js';
import { allFinite, computeDelta, encodedBytes } from './delta.js';
import { TypedEmitter } from './emitter.js';
import { errorMessage, FlockClientError, type ClientErrorCode } from './errors.js';
import { resolveLoss, type LossName, type LossSpec } from './losses.js';
import {
  instantiateModel,
  readWeights,
  snapshotModel,
  splitStoredWeights,
  storedModelFromInitial,
  storedModelFromLayersModel,
  storedModelFromPayload,
  type InitialModel,
  type StoredModel,
} from './model.js';
import { monotonicNow, randomClientId } from './runtime.js';
import { MemoryModelStore, type ClientState, type ModelStore } from './store.js';
import { evaluateModel, trainModel, type BatchProgress, type EvaluationResult, type LocalTrainingPlan } from './training.js';
import {
  modelFetchResultSchema,
  modelPublishedSchema,
  roundClosedSchema,
  roundConfigurationSchema,
  updateResultSchema,
  welcomeSchema,
} from '../protocol/index.js';
import { SDK_VERSION } from './version.js';

export type ClientStatus = 'idle' | 'connecting' | 'waiting' | 'training' | 'uploading' | 'evaluating' | 'offline' | 'stopped';

export type FlockSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type SocketFactory = (url: string, options: Partial<ManagerOptions & SocketOptions>) => FlockSocket;

export interface PersonalizationOptions {
  /** Epochs of local fine-tuning applied to an adopted global model (default 1; 0 = use it as is). */
  fineTuneEpochs?: number;
  /** Default 32. */
  batchSize?: number;
  /** Plain SGD learning rate (default 0.01). */
  learningRate?: number;
}

export interface AdoptionOptions {
  /** Largest allowed drop in accuracy (or rise in loss) versus the personalized model (default 0.02). */
  tolerance?: number;
  metric?: 'accuracy' | 'loss';
  /** Replaces the tolerance rule entirely. */
  policy?: AdoptionPolicy;
  /**
   * When the global model is worse than the personalized one: 'keep' the personalized model
   * (default), or 'fineTuneGlobal': fine-tune the global model locally and adopt the result if it
   * passes the same test.
   */
  onRejected?: 'keep' | 'fineTuneGlobal';
}

export interface FederatedClientOptions {
  /** Coordinator URL, e.g. 'https://flock.example.com' (socket.io endpoint). */
  serverUrl: string;
  /** Client token issued by the coordinator's operator. */
  clientToken: string;
  /** Local examples (never uploaded). */
  dataSource: DataSource;
  /** Condition detectors (idle, charging, unmetered); several per condition are combined. */
  conditions: readonly ConditionDetector[];
  /** What an 'unknown' condition means (default: not eligible). */
  unknownConditions?: UnknownConditionPolicy;
  /** Where state and models persist (default: memory, lost on restart). */
  store?: ModelStore;
  /**
   * A bundled model used for predict() until a global model is adopted (and as the personalized
   * model new global versions are tested against). A live model is copied at construction.
   */
  initialModel?: InitialModel;
  /** The global version the bundled model is, if known (default null). */
  initialModelVersion?: number | null;
  /** Loss for training and evaluation (default categorical cross-entropy). */
  loss?: LossName | LossSpec;
  adoption?: AdoptionOptions;
  personalization?: PersonalizationOptions;
  /**
   * Test newly published models only while the device is eligible (default true: downloading and
   * fine-tuning are work like training). With false, evaluation runs whenever connected.
   */
  evaluateOnlyWhenEligible?: boolean;
  /** Batch size of local evaluation (default 256). */
  evaluationBatchSize?: number;
  /** Timeout for acknowledged requests (model fetch, upload), default 60 s. */
  requestTimeoutMs?: number;
  /** Extra socket.io options (reconnection delays, transports, path...). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** Creates the socket (default: socket.io-client's `io`). */
  socketFactory?: SocketFactory;
  /** Use this client id instead of the persisted random one. */
  clientId?: string;
  /**
   * Transforms the delta after training and before its checks and upload (one array per weight
   * tensor; return arrays of the same lengths). For client-side extensions such as local clipping,
   * noise for differential privacy or compression experiments, and for simulating adversarial
   * devices (`pnpm simulate --byzantine`). The result goes through the same finiteness and size
   * checks as an untransformed delta.
   */
  transformDelta?: (delta: Float32Array[], context: DeltaContext) => Float32Array[];
}

export interface DeltaContext {
  roundId: string;
  modelVersion: number;
  numExamples: number;
}

export interface ClientEligibility {
  eligible: boolean;
  reasons: IneligibilityReason[];
  values: ConditionValues;
}

export interface TrainingProgress extends BatchProgress {
  /** 'round': federated training; 'personalization': fine-tuning an adopted model. */
  purpose: 'round' | 'personalization';
  roundId: string | null;
  modelVersion: number;
}

export interface UploadedEvent {
  roundId: string;
  modelVersion: number;
  /** Bytes of weight data sent (the encoded delta). */
  bytes: number;
  numExamples: number;
  trainLoss: number;
  result: UpdateResult;
  timings: RoundTimings;
}

/** Where a round's time went on the device (wall-clock milliseconds). */
export interface RoundTimings {
  /** Fetching the round's global model (0 when it was cached). */
  downloadMs: number;
  /** Local training, weights read back included. */
  trainingMs: number;
  /** Computing the delta, checking it and encoding it as binary. */
  encodeMs: number;
  /** Sending the upload until the coordinator's acknowledgement (transport and its validation). */
  uploadMs: number;
}

export interface RoundAbandonedEvent {
  roundId: string;
  /** Protocol reason, or why nothing was sent ('round_closed', 'superseded', 'disconnected'). */
  reason: AbandonReason | 'round_closed' | 'superseded' | 'disconnected';
}

export interface GlobalModelEvaluatedEvent {
  modelVersion: number;
  /** What was reported to the coordinator; null when the device has no held-out data. */
  report: EvaluationReport | null;
  decision: AdoptionDecision;
}

export interface ModelAdoptedEvent {
  version: number;
  fineTunedEpochs: number;
  /** The adopted model on local held-out data (after fine-tuning when it was re-tested), when known. */
  evaluation: EvaluationResult | null;
}

export interface FederatedClientEvents {
  statusChange: { status: ClientStatus; previous: ClientStatus };
  eligibilityChange: ClientEligibility;
  connected: Welcome;
  roundJoined: RoundConfiguration;
  trainingProgress: TrainingProgress;
  uploaded: UploadedEvent;
  roundAbandoned: RoundAbandonedEvent;
  roundClosed: RoundClosed;
  /** The coordinator committed a new global version (it is tested locally when the device is eligible). */
  modelPublished: ModelPublished;
  globalModelEvaluated: GlobalModelEvaluatedEvent;
  modelAdopted: ModelAdoptedEvent;
  error: FlockClientError;
}

type CancelReason = RoundAbandonedEvent['reason'];

/** The one piece of work (a round or an evaluation) the client runs at a time. */
class Job {
  phase: 'training' | 'uploading' | 'evaluating';
  cancelReason: CancelReason | null = null;
  done: Promise<void> = Promise.resolve();

  constructor(
    readonly kind: 'round' | 'evaluation',
    readonly roundId: string | null,
  ) {
    this.phase = kind === 'round' ? 'training' : 'evaluating';
  }

  cancel(reason: CancelReason): void {
    this.cancelReason ??= reason;
  }

  get cancelled(): boolean {
    return this.cancelReason !== null;
  }
}

interface PersonalModel {
  model: tf.LayersModel;
  version: number | null;
  fineTunedEpochs: number;
}

const PROTOCOL_ABANDON_REASONS: readonly string[] = ABANDON_REASONS;

export class FederatedClient extends TypedEmitter<FederatedClientEvents> {
  private readonly options: FederatedClientOptions;
  private readonly store: ModelStore;
  private readonly loss: LossSpec;
  private readonly adoptionPolicy: AdoptionPolicy;
  private readonly monitor: ConditionMonitor;
  private readonly unsubscribeMonitor: () => void;
  /** A bundled live model is copied at construction, so the app may dispose its own. */
  private readonly initialCopy: StoredModel | null;

  private currentStatus: ClientStatus = 'idle';
  private started = false;
  private everStarted = false;
  private everConnected = false;
  private socket: FlockSocket | null = null;
  private welcome: Welcome | null = null;
  private connectionErrorReported = false;

  private loading: Promise<void> | null = null;
  private state: ClientState | null = null;
  private personal: PersonalModel | null = null;
  private fallbackModel: PersonalModel | null = null;
  private globalCache: StoredModel | null = null;

  private job: Job | null = null;
  /** Round waiting for the current job to end (blocks evaluations from starting meanwhile). */
  private nextRoundId: string | null = null;
  private pendingEvaluationVersion: number | null = null;
  private failedEvaluationVersion: number | null = null;
  private readonly rejectionsSeen = new Set<string>();

  private lastEligibility: ClientEligibility | null = null;
  private lastReported: string | null = null;
  private reportSequence = 0;

  constructor(options: FederatedClientOptions) {
    super((error, event) => {
      // A throwing listener must not break the state machine; report it (unless it was an error listener).
      if (event !== 'error') this.reportError('listener_failed', `a '${String(event)}' listener threw: ${errorMessage(error)}`, { cause: error });
    });
    if (!options.serverUrl) throw new TypeError('FederatedClient: serverUrl is required');
    if (!options.clientToken) throw new TypeError('FederatedClient: clientToken is required');
    if (!options.dataSource) throw new TypeError('FederatedClient: dataSource is required');
    if (options.clientId !== undefined) clientIdSchema.parse(options.clientId);
    this.options = options;
    this.store = options.store ?? new MemoryModelStore();
    this.loss = resolveLoss(options.loss);
    this.adoptionPolicy =
      options.adoption?.policy ?? toleranceAdoption({ tolerance: options.adoption?.tolerance, metric: options.adoption?.metric });
    this.initialCopy =
      options.initialModel instanceof tf.LayersModel ? storedModelFromLayersModel(options.initialModel, options.initialModelVersion ?? null) : null;
    this.monitor = new ConditionMonitor(options.conditions ?? [], options.unknownConditions ?? DEFAULT_UNKNOWN_POLICY);
    this.unsubscribeMonitor = this.monitor.subscribe(() => this.onConditionsChanged());
  }

  // ---------------------------------------------------------------- public API

  get status(): ClientStatus {
    return this.currentStatus;
  }

  /** Device conditions as last computed (without the data check, which is asynchronous). */
  get conditions(): ClientEligibility {
    const { eligible, reasons, values } = this.monitor.eligibility;
    return { eligible, reasons: [...reasons], values: { ...values } };
  }

  /** The persisted client id (available after `load()` or `start()`). */
  get clientId(): string | null {
    return this.state?.clientId ?? null;
  }

  /** What predict() uses and where local state stands. */
  get modelInfo(): {
    personalVersion: number | null;
    fineTunedEpochs: number;
    hasModel: boolean;
    lastEvaluatedVersion: number | null;
    lastEvaluation: EvaluationReport | null;
    cachedGlobalVersion: number | null;
  } {
    return {
      personalVersion: this.personal?.version ?? null,
      fineTunedEpochs: this.personal?.fineTunedEpochs ?? 0,
      hasModel: this.personal !== null || this.globalCache !== null,
      lastEvaluatedVersion: this.state?.lastEvaluatedVersion ?? null,
      lastEvaluation: this.state?.lastEvaluation ?? null,
      cachedGlobalVersion: this.globalCache?.version ?? null,
    };
  }

  /**
   * Loads persisted state (client id, personalized model, cached global model) without
   * connecting: enough for offline `predict()`. `start()` calls it; calling it twice is harmless.
   */
  load(): Promise<void> {
    this.loading ??= this.loadState().catch((error: unknown) => {
      this.loading = null;
      throw error instanceof FlockClientError ? error : new FlockClientError('store_failed', `loading local state failed: ${errorMessage(error)}`, { cause: error });
    });
    return this.loading;
  }

  /** Loads local state and connects; from then on the client participates whenever eligible. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.everStarted = true;
    this.everConnected = false;
    this.refreshStatus();
    try {
      await this.load();
    } catch (error) {
      this.started = false;
      this.refreshStatus();
      throw error;
    }
    if (!this.started) return; // stop() was called while loading
    this.connect();
  }

  /**
   * Stops participating: a round in progress is abandoned (reason 'stopped', nothing uploaded) and
   * the connection closed. Persisted state and predict() remain available; start() resumes.
   */
  async stop(): Promise<void> {
    if (!this.started && !this.socket) return;
    this.started = false;
    this.nextRoundId = null;
    const job = this.job;
    if (job) {
      job.cancel('stopped');
      await job.done;
    }
    const socket = this.socket;
    this.socket = null;
    this.welcome = null;
    this.lastReported = null;
    socket?.removeAllListeners();
    socket?.disconnect();
    this.refreshStatus();
  }

  /** stop(), then frees the models' memory and closes the store; the client cannot be reused. */
  async dispose(): Promise<void> {
    await this.stop();
    await this.loading?.catch(() => undefined);
    this.unsubscribeMonitor();
    this.monitor.close();
    this.personal?.model.dispose();
    this.fallbackModel?.model.dispose();
    this.personal = null;
    this.fallbackModel = null;
    await this.store.close?.();
  }

  /**
   * Predicts with the personalized model (or, before one exists, the last global model fetched).
   * Works offline from persisted state. Accepts a tensor or arrays (one row per example, or a single
   * example); returns a tensor the caller disposes.
   */
  async predict(input: tf.Tensor | ExampleValues): Promise<tf.Tensor> {
    await this.load();
    const model = await this.predictionModel();
    return tf.tidy(() => {
      const features = featuresForModel(input, model);
      return model.predict(features) as tf.Tensor;
    });
  }

  // ---------------------------------------------------------------- loading

  private async loadState(): Promise<void> {
    await tf.ready();
    let state = await this.store.loadState();
    const wantedId = this.options.clientId;
    if (!state || (wantedId !== undefined && state.clientId !== wantedId) || !clientIdSchema.safeParse(state.clientId).success) {
      state = {
        clientId: wantedId ?? state?.clientId ?? randomClientId(),
        lastEvaluatedVersion: state?.lastEvaluatedVersion ?? null,
        lastEvaluation: state?.lastEvaluation ?? null,
      };
      if (!clientIdSchema.safeParse(state.clientId).success) state.clientId = randomClientId();
      await this.store.saveState(state);
    }
    this.state = state;

    this.globalCache = await this.store.loadModel('global');
    let personal = await this.store.loadModel('personal');
    if (!personal && this.options.initialModel !== undefined) {
      personal = this.initialCopy ?? (await storedModelFromInitial(this.options.initialModel, this.options.initialModelVersion ?? null));
      await this.store.saveModel('personal', personal);
    }
    if (personal) {
      this.personal = { model: await instantiateModel(personal), version: personal.version, fineTunedEpochs: personal.fineTunedEpochs };
    }
  }

  private async predictionModel(): Promise<tf.LayersModel> {
    if (this.personal) return this.personal.model;
    const cached = this.globalCache;
    if (cached) {
      if (this.fallbackModel?.version !== cached.version) {
        this.fallbackModel?.model.dispose();
        this.fallbackModel = { model: await instantiateModel(cached), version: cached.version, fineTunedEpochs: 0 };
      }
      return this.fallbackModel.model;
    }
    throw new FlockClientError('no_model', 'no model yet: pass an initialModel or wait for the first global model');
  }

  // ---------------------------------------------------------------- connection

  private connect(): void {
    const state = this.state!;
    const auth: HandshakeAuth = { token: this.options.clientToken, clientId: state.clientId, protocolVersion: PROTOCOL_VERSION, sdkVersion: SDK_VERSION };
    const factory: SocketFactory = this.options.socketFactory ?? ((url, options) => io(url, options) as FlockSocket);
    // forceNew: socket.io otherwise shares one connection between clients of the same URL.
    const socket = factory(this.options.serverUrl, { forceNew: true, ...this.options.socketOptions, auth: { ...auth } });
    this.socket = socket;
    this.connectionErrorReported = false;

    socket.on('connect', () => {
      this.everConnected = true;
      this.connectionErrorReported = false;
      this.lastReported = null;
      this.refreshStatus();
      void this.reportConditions();
    });
    socket.on('connect_error', (error: Error) => {
      const fatal = (CONNECT_ERRORS as readonly string[]).includes(error.message);
      if (fatal) {
        // Middleware refusals are final for socket.io (no automatic reconnection).
        this.reportError(error.message as ConnectError, `the coordinator refused the connection: ${error.message}`, { cause: error });
      } else if (!this.connectionErrorReported) {
        this.connectionErrorReported = true;
        this.reportError('connection', `cannot reach the coordinator (retrying): ${error.message}`, { cause: error });
      }
      this.everConnected = true; // a failed attempt: offline until it succeeds
      this.refreshStatus();
    });
    socket.on('disconnect', () => {
      this.welcome = null;
      this.lastReported = null;
      // The coordinator counts a selected client that disconnects as dropped: stop its round.
      if (this.job?.kind === 'round') this.job.cancel('disconnected');
      this.refreshStatus();
    });
    socket.on(ServerEvent.welcome, (message) => this.onWelcome(message));
    socket.on(ServerEvent.configure, (message) => void this.onConfigure(message));
    socket.on(ServerEvent.roundClosed, (message) => this.onRoundClosed(message));
    socket.on(ServerEvent.modelPublished, (message) => this.onModelPublished(message));
    socket.on(ServerEvent.updateRejected, (rejection) => {
      const key = rejection.roundId ?? '';
      // The acknowledgement of our own upload carries the same rejection and is reported from there.
      if (this.rejectionsSeen.has(key) || (this.job?.roundId === key && this.job.phase === 'uploading')) return;
      this.reportError('upload_rejected', `upload rejected (${rejection.reason}): ${rejection.message}`, {
        rejection: rejection.reason,
        ...(rejection.roundId ? { roundId: rejection.roundId } : {}),
      });
    });
  }

  private onWelcome(message: unknown): void {
    const parsed = welcomeSchema.safeParse(message);
    if (!parsed.success) return this.reportError('protocol', `malformed welcome: ${parsed.error.message}`);
    this.welcome = parsed.data;
    this.emit('connected', parsed.data);
    const current = parsed.data.currentModelVersion;
    // Catch up with a version published while this device was offline.
    if (current !== null && current > (this.state?.lastEvaluatedVersion ?? 0)) this.queueEvaluation(current);
  }

  // ---------------------------------------------------------------- conditions

  private onConditionsChanged(): void {
    const { eligible } = this.monitor.eligibility;
    const job = this.job;
    if (!eligible && job && (job.kind === 'round' || this.options.evaluateOnlyWhenEligible !== false)) {
      job.cancel('conditions_changed');
    }
    void this.reportConditions();
    if (eligible && this.failedEvaluationVersion !== null) {
      const version = this.failedEvaluationVersion;
      this.failedEvaluationVersion = null;
      this.queueEvaluation(version);
    } else if (eligible) {
      this.maybeStartEvaluation();
    }
  }

  /** Emits `client:conditions` (and `eligibilityChange`) when the report differs from the last one. */
  private async reportConditions(): Promise<void> {
    const sequence = ++this.reportSequence;
    const conditions = this.monitor.eligibility;
    let hasData = true;
    try {
      const count = await this.options.dataSource.countTrainingExamples?.();
      if (count !== undefined) hasData = count > 0;
    } catch (error) {
      this.reportError('data_source_failed', `counting training examples failed: ${errorMessage(error)}`, { cause: error });
    }
    if (sequence !== this.reportSequence) return; // a newer report is on its way
    const reasons: IneligibilityReason[] = [...conditions.reasons];
    if (!hasData) reasons.push('no_data');
    const eligibility: ClientEligibility = { eligible: reasons.length === 0, reasons, values: { ...conditions.values } };
    const key = JSON.stringify(eligibility);
    if (JSON.stringify(this.lastEligibility) !== key) {
      this.lastEligibility = eligibility;
      this.emit('eligibilityChange', eligibility);
    }
    const report = JSON.stringify({ eligible: eligibility.eligible, reasons });
    if (this.socket?.connected && this.lastReported !== report) {
      this.lastReported = report;
      this.socket.emit(ClientEvent.conditions, { eligible: eligibility.eligible, reasons });
    }
  }

  // ---------------------------------------------------------------- rounds

  private async onConfigure(message: unknown): Promise<void> {
    const parsed = roundConfigurationSchema.safeParse(message);
    if (!parsed.success) return this.reportError('protocol', `malformed round configuration: ${parsed.error.message}`);
    const configuration: RoundConfiguration = parsed.data;
    if (this.job?.roundId === configuration.roundId || this.nextRoundId === configuration.roundId) return; // duplicate
    this.nextRoundId = configuration.roundId;
    const previous = this.job;
    if (previous) {
      // The coordinator only configures clients it considers free: a newer round replaces the old one.
      previous.cancel('superseded');
      await previous.done;
    }
    if (this.nextRoundId !== configuration.roundId || !this.started) return; // replaced or stopped meanwhile
    this.nextRoundId = null;
    this.runJob(new Job('round', configuration.roundId), (job) => this.runRound(job, configuration));
  }

  private onRoundClosed(message: unknown): void {
    const parsed = roundClosedSchema.safeParse(message);
    if (!parsed.success) return this.reportError('protocol', `malformed round:closed: ${parsed.error.message}`);
    if (this.job?.roundId === parsed.data.roundId) this.job.cancel('round_closed');
    if (this.nextRoundId === parsed.data.roundId) this.nextRoundId = null;
    this.emit('roundClosed', parsed.data);
  }

  private runJob(job: Job, body: (job: Job) => Promise<void>): void {
    this.job = job;
    this.refreshStatus();
    job.done = (async () => {
      try {
        await body(job);
      } catch (error) {
        const code: ClientErrorCode = job.kind === 'round' ? 'training_failed' : 'evaluation_failed';
        this.reportError(error instanceof FlockClientError ? error.code : code, errorMessage(error), {
          cause: error,
          ...(job.roundId ? { roundId: job.roundId } : {}),
        });
        // After the upload was sent the coordinator may have it: abandoning would contradict it.
        if (job.kind === 'round' && job.roundId && job.phase !== 'uploading') this.abandon(job.roundId, 'training_failed');
        if (job.kind === 'evaluation') this.evaluationFailed();
      } finally {
        if (this.job === job) this.job = null;
        this.refreshStatus();
        this.maybeStartEvaluation();
      }
    })();
  }

  private abandon(roundId: string, reason: CancelReason): void {
    if (PROTOCOL_ABANDON_REASONS.includes(reason) && this.socket?.connected) {
      this.socket.emit(ClientEvent.abandon, { roundId, reason: reason as AbandonReason });
    }
    this.emit('roundAbandoned', { roundId, reason });
  }

  private async runRound(job: Job, configuration: RoundConfiguration): Promise<void> {
    const { roundId, modelVersion, plan, deadlineAt } = configuration;
    if (!this.monitor.eligibility.eligible) return this.abandon(roundId, 'conditions_changed');
    if (Date.now() >= deadlineAt) return this.abandon(roundId, 'deadline');
    this.emit('roundJoined', configuration);

    const downloadStarted = monotonicNow();
    const global = await this.globalModel(modelVersion);
    const downloadMs = monotonicNow() - downloadStarted;
    if (job.cancelled) return this.abandon(roundId, job.cancelReason!);
    const trainingStarted = monotonicNow();
    const model = await instantiateModel(global);
    let examples: ExampleTensors | null = null;
    let trained: Float32Array[];
    let trainLoss: number;
    let numExamples: number;
    try {
      examples = await this.trainingExamples(model);
      if (!examples) return this.abandon(roundId, 'no_data');
      numExamples = examples.count;
      if (job.cancelled) return this.abandon(roundId, job.cancelReason!);
      const result = await trainModel(model, examples.xs, examples.ys, plan, {
        loss: this.loss,
        shouldStop: () => {
          if (!job.cancelled && Date.now() >= deadlineAt) job.cancel('deadline');
          return job.cancelled;
        },
        onBatchEnd: (progress) => this.emit('trainingProgress', { ...progress, purpose: 'round', roundId, modelVersion }),
      });
      if (!result.completed) return this.abandon(roundId, job.cancelReason ?? 'training_failed');
      trained = readWeights(model, global.weightSpecs);
      trainLoss = result.lastEpochLoss ?? NaN;
    } finally {
      examples?.dispose();
      model.dispose();
    }
    const encodeStarted = monotonicNow();
    const trainingMs = encodeStarted - trainingStarted;

    // Only the delta leaves the device: trained minus received weights, one float32 buffer.
    const shapes = global.weightSpecs.map((spec) => spec.shape);
    let delta = computeDelta(trained, splitStoredWeights(global));
    if (this.options.transformDelta) delta = this.options.transformDelta(delta, { roundId, modelVersion, numExamples });
    const encoded = encodeWeights(delta, shapes);
    if (!Number.isFinite(trainLoss) || !allFinite(delta)) {
      this.reportError('training_failed', `training diverged (loss ${trainLoss}): not uploading`, { roundId });
      return this.abandon(roundId, 'training_failed');
    }
    const bytes = encodedBytes(encoded);
    if (this.welcome && bytes > this.welcome.maxUploadBytes) {
      this.reportError('training_failed', `the delta has ${bytes} bytes, the coordinator accepts ${this.welcome.maxUploadBytes}`, { roundId });
      return this.abandon(roundId, 'training_failed');
    }
    if (job.cancelled) return this.abandon(roundId, job.cancelReason!);
    const socket = this.socket;
    if (!socket?.connected) return this.abandon(roundId, 'disconnected');

    job.phase = 'uploading';
    this.refreshStatus();
    const upload: UpdateUpload = { roundId, modelVersion, numExamples, trainLoss, delta: encoded };
    const uploadStarted = monotonicNow();
    const encodeMs = uploadStarted - encodeStarted;
    let ack: unknown;
    try {
      ack = await socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.update, upload);
    } catch (error) {
      throw new FlockClientError('upload_failed', `upload for round ${roundId} was not acknowledged: ${errorMessage(error)}`, { cause: error, roundId });
    }
    const parsed = updateResultSchema.safeParse(ack);
    if (!parsed.success) throw new FlockClientError('protocol', `malformed upload acknowledgement: ${parsed.error.message}`, { roundId });
    const result: UpdateResult = parsed.data;
    const timings: RoundTimings = { downloadMs, trainingMs, encodeMs, uploadMs: monotonicNow() - uploadStarted };
    this.emit('uploaded', { roundId, modelVersion, bytes, numExamples, trainLoss, result, timings });
    if (!result.accepted) {
      if (this.rejectionsSeen.size >= 64) this.rejectionsSeen.clear(); // only recent rounds matter
      this.rejectionsSeen.add(roundId);
      this.reportError('upload_rejected', `upload for round ${roundId} rejected (${result.reason}): ${result.message}`, {
        roundId,
        rejection: result.reason,
      });
    }
  }

  private async trainingExamples(model: tf.LayersModel): Promise<ExampleTensors | null> {
    try {
      return await loadExampleTensors(() => this.options.dataSource.trainingData(), model);
    } catch (error) {
      throw new FlockClientError('data_source_failed', `reading training examples failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  private async testExamples(model: tf.LayersModel): Promise<ExampleTensors | null> {
    try {
      return await loadExampleTensors(() => this.options.dataSource.testData(), model);
    } catch (error) {
      throw new FlockClientError('data_source_failed', `reading test examples failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  private get requestTimeoutMs(): number {
    return this.options.requestTimeoutMs ?? 60_000;
  }

  /** The global model of `version`: from the cache when it is that version, else fetched and cached. */
  private async globalModel(version: number): Promise<StoredModel> {
    if (this.globalCache?.version === version) return this.globalCache;
    const socket = this.socket;
    if (!socket?.connected) throw new FlockClientError('model_fetch_failed', `cannot fetch model version ${version}: not connected`);
    let response: unknown;
    try {
      response = await socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.fetchModel, { version });
    } catch (error) {
      throw new FlockClientError('model_fetch_failed', `fetching model version ${version} failed: ${errorMessage(error)}`, { cause: error, modelVersion: version });
    }
    const parsed = modelFetchResultSchema.safeParse(response);
    if (!parsed.success) throw new FlockClientError('protocol', `malformed model: ${parsed.error.message}`, { modelVersion: version });
    if (!parsed.data.ok) throw new FlockClientError('model_fetch_failed', `the coordinator has no model version ${version}: ${parsed.data.error}`, { modelVersion: version });
    if (parsed.data.model.version !== version) {
      throw new FlockClientError('protocol', `asked for model version ${version}, received ${parsed.data.model.version}`, { modelVersion: version });
    }
    const stored = storedModelFromPayload(parsed.data.model);
    // Keep only the newest global version.
    if (this.globalCache === null || (this.globalCache.version ?? 0) <= version) {
      this.globalCache = stored;
      try {
        await this.store.saveModel('global', stored);
      } catch (error) {
        this.reportError('store_failed', `caching global model ${version} failed: ${errorMessage(error)}`, { cause: error });
      }
    }
    return stored;
  }

  // ---------------------------------------------------------------- evaluation and personalization

  private onModelPublished(message: unknown): void {
    const parsed = modelPublishedSchema.safeParse(message);
    if (!parsed.success) return this.reportError('protocol', `malformed model:published: ${parsed.error.message}`);
    const published: ModelPublished = parsed.data;
    this.emit('modelPublished', published);
    this.queueEvaluation(published.version);
  }

  private queueEvaluation(version: number): void {
    if (version <= (this.state?.lastEvaluatedVersion ?? 0)) return;
    this.failedEvaluationVersion = null;
    this.pendingEvaluationVersion = Math.max(this.pendingEvaluationVersion ?? 0, version);
    this.maybeStartEvaluation();
  }

  /**
   * A failed evaluation (fetch error, data source error) is not retried in a loop: it waits for the
   * next trigger (a publication, a reconnection, or the device becoming eligible again).
   */
  private evaluationFailed(): void {
    if (this.pendingEvaluationVersion !== null) this.failedEvaluationVersion = this.pendingEvaluationVersion;
    this.pendingEvaluationVersion = null;
  }

  private maybeStartEvaluation(): void {
    const version = this.pendingEvaluationVersion;
    if (version === null || this.job || this.nextRoundId || !this.started || !this.socket?.connected) return;
    if (this.options.evaluateOnlyWhenEligible !== false && !this.monitor.eligibility.eligible) return;
    this.runJob(new Job('evaluation', null), (job) => this.runEvaluation(job, version));
  }

  /**
   * Tests global model `version` on held-out local data against the personalized model, decides
   * adoption, fine-tunes what it adopts, persists it, and reports the aggregate numbers. A cancelled
   * evaluation stays pending and runs again later.
   */
  private async runEvaluation(job: Job, version: number): Promise<void> {
    const global = await this.globalModel(version);
    if (job.cancelled) return;
    const candidate = await instantiateModel(global);
    let adoptedModel: tf.LayersModel | null = null;
    let test: ExampleTensors | null = null;
    try {
      test = await this.testExamples(candidate);
      const batchSize = this.options.evaluationBatchSize ?? 256;
      const globalEval = test ? await evaluateModel(candidate, test.xs, test.ys, this.loss, batchSize) : null;
      let personalEval: EvaluationResult | null = null;
      if (test && this.personal) {
        try {
          personalEval = await evaluateModel(this.personal.model, test.xs, test.ys, this.loss, batchSize);
        } catch (error) {
          // A bundled model with another architecture cannot be compared: treat it as absent.
          this.reportError('evaluation_failed', `the personalized model cannot be evaluated: ${errorMessage(error)}`, { cause: error });
        }
      }
      if (job.cancelled) return;

      let decision: AdoptionDecision = globalEval
        ? this.adoptionPolicy({ global: globalEval, personal: personalEval })
        : { adopt: true, reason: 'no held-out local data to test on' };
      const fineTuneGlobal = !decision.adopt && this.options.adoption?.onRejected === 'fineTuneGlobal';
      let fineTunedEpochs = 0;
      let adoptedEval: EvaluationResult | null = globalEval;
      if (decision.adopt || fineTuneGlobal) {
        fineTunedEpochs = await this.fineTune(job, candidate, version);
        if (job.cancelled) return;
        if (test && fineTunedEpochs > 0) adoptedEval = await evaluateModel(candidate, test.xs, test.ys, this.loss, batchSize);
        if (fineTuneGlobal && adoptedEval) {
          const retest = this.adoptionPolicy({ global: adoptedEval, personal: personalEval });
          decision = { adopt: retest.adopt, reason: `after local fine-tuning: ${retest.reason}` };
        }
      }

      const report: EvaluationReport | null =
        globalEval && test
          ? {
              modelVersion: version,
              numExamples: test.count,
              globalLoss: globalEval.loss,
              globalAccuracy: globalEval.accuracy,
              personalLoss: personalEval?.loss ?? null,
              personalAccuracy: personalEval?.accuracy ?? null,
              adopted: decision.adopt,
            }
          : null;

      if (decision.adopt) {
        const stored = snapshotModel(candidate, global, fineTunedEpochs);
        await this.store.saveModel('personal', stored);
        this.personal?.model.dispose();
        this.personal = { model: candidate, version, fineTunedEpochs };
        adoptedModel = candidate;
      }
      this.state = { ...this.state!, lastEvaluatedVersion: version, lastEvaluation: report ?? this.state!.lastEvaluation };
      await this.store.saveState(this.state);
      if (this.pendingEvaluationVersion !== null && this.pendingEvaluationVersion <= version) this.pendingEvaluationVersion = null;

      // Aggregates only: losses, accuracies and a count, never examples or predictions.
      if (report && Number.isFinite(report.globalLoss) && this.socket?.connected) this.socket.emit(ClientEvent.evaluation, report);
      this.emit('globalModelEvaluated', { modelVersion: version, report, decision });
      if (decision.adopt) this.emit('modelAdopted', { version, fineTunedEpochs, evaluation: adoptedEval });
    } finally {
      test?.dispose();
      if (adoptedModel !== candidate) candidate.dispose();
    }
  }

  /** Fine-tunes `model` in place on local training data; returns the epochs completed. */
  private async fineTune(job: Job, model: tf.LayersModel, version: number): Promise<number> {
    const settings = this.options.personalization ?? {};
    const epochs = settings.fineTuneEpochs ?? 1;
    if (epochs <= 0) return 0;
    const examples = await this.trainingExamples(model);
    if (!examples) return 0;
    try {
      const plan: LocalTrainingPlan = { epochs, batchSize: settings.batchSize ?? 32, learningRate: settings.learningRate ?? 0.01 };
      const result = await trainModel(model, examples.xs, examples.ys, plan, {
        loss: this.loss,
        shouldStop: () => job.cancelled,
        onBatchEnd: (progress) => this.emit('trainingProgress', { ...progress, purpose: 'personalization', roundId: null, modelVersion: version }),
      });
      return result.epochsCompleted;
    } finally {
      examples.dispose();
    }
  }

  // ---------------------------------------------------------------- status and errors

  private refreshStatus(): void {
    let status: ClientStatus;
    if (this.job) status = this.job.phase;
    else if (!this.started) status = this.everStarted ? 'stopped' : 'idle';
    else if (this.socket?.connected) status = 'waiting';
    else status = this.everConnected ? 'offline' : 'connecting';
    if (status === this.currentStatus) return;
    const previous = this.currentStatus;
    this.currentStatus = status;
    this.emit('statusChange', { status, previous });
  }

  private reportError(code: ClientErrorCode, message: string, details: FlockClientError['details'] = {}): void {
    this.emit('error', new FlockClientError(code, message, details));
  }
}

/** Turns predict() input into a batch shaped for the model (a single example gets a batch axis). */
function featuresForModel(input: tf.Tensor | ExampleValues, model: tf.LayersModel): tf.Tensor {
  const inputShape = model.inputs[0]!.shape.slice(1);
  const exampleSize = inputShape.every((dim): dim is number => dim !== null) ? tf.util.sizeFromShape(inputShape as number[]) : null;
  const tensor = toFeatureTensor(input);
  if (exampleSize !== null && tensor.size === exampleSize) return tf.reshape(tensor, [1, ...(inputShape as number[])]);
  if (exampleSize !== null && tensor.shape[0] !== undefined && tensor.size === tensor.shape[0] * exampleSize) {
    return tf.reshape(tensor, [tensor.shape[0], ...(inputShape as number[])]);
  }
  return tensor;
}
