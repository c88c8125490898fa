/**
 * The public types of FederatedClient: its options, its status and the payloads of its events.
 * Defaults of the options are named in defaults.ts.
 */
import type { ManagerOptions, Socket, SocketOptions } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../protocol/events.js';
import type { Welcome } from '../protocol/handshake.js';
import type { EvaluationReport, ModelPublished } from '../protocol/model-messages.js';
import type { PersonalizationMethod } from '../protocol/personalization.js';
import type { AbandonReason, IneligibilityReason } from '../protocol/reasons.js';
import type { RoundClosed, RoundConfiguration, UpdateResult } from '../protocol/round-messages.js';
import type { AdoptionDecision, AdoptionPolicy } from './adoption.js';
import type { ConditionDetector, ConditionValues, UnknownConditionPolicy } from './conditions.js';
import type { DataSource } from './data.js';
import type { FetchLike } from './runtime.js';
import type { FlockClientError } from './errors.js';
import type { DeviceIdentityInfo } from './identity.js';
import type { LossName, LossSpec } from './losses.js';
import type { InitialModel } from './model.js';
import type { ModelStore } from './store.js';
import type { BatchProgress, EvaluationResult } from './training.js';

export type ClientStatus = 'idle' | 'connecting' | 'waiting' | 'training' | 'uploading' | 'evaluating' | 'offline' | 'stopped';

export type FlockSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type SocketFactory = (url: string, options: Partial<ManagerOptions & SocketOptions>) => FlockSocket;

export interface PersonalizationOptions {
  /**
   * How the device keeps its own model (core/personalization.ts): 'fine-tune' the adopted global
   * model (default, DEFAULT_PERSONALIZATION_METHOD), 'ditto' (a personal model pulled towards each
   * global version), or 'personal-layers' (`personalLayers` never leave the device). A round's plan
   * may override it.
   */
  method?: PersonalizationMethod;
  /** Ditto's proximal weight lambda. Default DEFAULT_DITTO_LAMBDA (0.1). */
  dittoLambda?: number;
  /** personal-layers: the names of the layers (tfjs layer `name`) that stay on the device. */
  personalLayers?: readonly string[];
  /**
   * Epochs of local training per new global version: fine-tuning an adopted model, Ditto's
   * personal update, or the personal layers' training (0 = none). Default DEFAULT_FINE_TUNE_EPOCHS (1).
   */
  fineTuneEpochs?: number;
  /** Default DEFAULT_FINE_TUNE_BATCH_SIZE (32). */
  batchSize?: number;
  /** Plain SGD learning rate. Default DEFAULT_FINE_TUNE_LEARNING_RATE (0.01). */
  learningRate?: number;
}

export interface AdoptionOptions {
  /** Largest allowed drop in accuracy (or rise in loss) versus the personalized model. Default DEFAULT_ADOPTION_TOLERANCE (0.02). */
  tolerance?: number;
  /** Default DEFAULT_ADOPTION_METRIC ('accuracy'). */
  metric?: 'accuracy' | 'loss';
  /** Replaces the tolerance rule entirely. */
  policy?: AdoptionPolicy;
  /**
   * When the global model is worse than the personalized one: 'keep' the personalized model
   * (default, DEFAULT_ON_REJECTED), or 'fineTuneGlobal': fine-tune the global model locally and adopt the result if it
   * passes the same test.
   */
  onRejected?: 'keep' | 'fineTuneGlobal';
}

/**
 * A device token from the app's backend (enrolment): a JWT bound to this device's key (`cnf.jkt`
 * equal to `device.clientId`). Called at every connection attempt, so it may fetch a fresh token.
 */
export type DeviceTokenProvider = (device: DeviceIdentityInfo) => string | Promise<string>;

export interface FederatedClientOptions {
  /** Coordinator URL, e.g. 'https://flock.example.com' (socket.io endpoint). */
  serverUrl: string;
  /** The shared client token issued by the coordinator's operator (when enrolment is off). Give this or `deviceToken`. */
  clientToken?: string;
  /**
   * With enrolment on (the coordinator verifies device tokens): the device token, or a function
   * that returns one for this device (called at each connection, since tokens expire). Give this or
   * `clientToken`.
   */
  deviceToken?: string | DeviceTokenProvider;
  /** Local examples (never uploaded). */
  dataSource: DataSource;
  /** Condition detectors (idle, charging, unmetered); several per condition are combined. */
  conditions: readonly ConditionDetector[];
  /** What an 'unknown' condition means. Default DEFAULT_UNKNOWN_POLICY ('ineligible'). */
  unknownConditions?: UnknownConditionPolicy;
  /** Where state and models persist (default: memory, lost on restart). */
  store?: ModelStore;
  /**
   * A bundled model used for predict() until a global model is adopted (and as the personalized
   * model new global versions are tested against). A live model is copied at construction.
   */
  initialModel?: InitialModel;
  /** The global version the bundled model is, if known. Default DEFAULT_INITIAL_MODEL_VERSION (null). */
  initialModelVersion?: number | null;
  /** Loss for training and evaluation. Default DEFAULT_LOSS ('categoricalCrossentropy'). */
  loss?: LossName | LossSpec;
  adoption?: AdoptionOptions;
  personalization?: PersonalizationOptions;
  /**
   * Test newly published models only while the device is eligible (default true,
   * DEFAULT_EVALUATE_ONLY_WHEN_ELIGIBLE: downloading and fine-tuning are work like training). With false, evaluation runs whenever connected.
   */
  evaluateOnlyWhenEligible?: boolean;
  /** Batch size of local evaluation. Default DEFAULT_EVALUATION_BATCH_SIZE (256). */
  evaluationBatchSize?: number;
  /** Timeout for acknowledged requests (model fetch, upload). Default DEFAULT_REQUEST_TIMEOUT_MS (60 s). */
  requestTimeoutMs?: number;
  /** Wait before reconnecting after the deviceToken function failed or the token had expired. Default DEFAULT_CREDENTIAL_RETRY_MS (30 s). */
  credentialRetryMs?: number;
  /** Extra socket.io options (reconnection delays, transports, path...). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** Creates the socket (default: socket.io-client's `io`). */
  socketFactory?: SocketFactory;
  /** What uploads over HTTP go through, when a round's plan names the coordinator's upload listener (default: the global `fetch`; any WHATWG fetch fits). */
  fetch?: FetchLike;
  /**
   * Transforms the delta after training and before its checks and upload (one array per weight
   * tensor; return arrays of the same lengths). For client-side extensions such as local clipping,
   * noise for differential privacy or compression experiments, and for simulating adversarial
   * devices (`pnpm simulate --byzantine`). The result goes through the same finiteness and size
   * checks as an untransformed delta.
   */
  transformDelta?: (delta: Float32Array[], context: DeltaContext) => Float32Array[];
  /**
   * Ask for download deltas (default false): a device holding global version v exactly (received
   * whole) fetches a newer version as the int8 difference to v, about a quarter of the bytes. The
   * model so rebuilt is within half a tensor's int8 step of the version's weights (not bit-exact);
   * it is kept in memory only, and the exact v stays the base of later deltas until the
   * coordinator sends a whole model again (more than 20 versions on). See the README.
   */
  downloadDeltas?: boolean;
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
  /** Secure rounds: bytes sent and received over the four phases (`bytes` is bytesUp). */
  secureAggregation?: { bytesUp: number; bytesDown: number };
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

/** What predict() uses and where local state stands (`FederatedClient.modelInfo`). */
export interface ModelInfo {
  personalVersion: number | null;
  fineTunedEpochs: number;
  hasModel: boolean;
  lastEvaluatedVersion: number | null;
  lastEvaluation: EvaluationReport | null;
  cachedGlobalVersion: number | null;
}
