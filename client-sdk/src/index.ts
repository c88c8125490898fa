/**
 * @flock/client-sdk: platform-neutral API (browser, Node, React Native).
 * Platform adapters are separate entry points so that bundles only carry what they use:
 * `@flock/client-sdk/browser` (web condition detectors, IndexedDB store, backend selection) and
 * `@flock/client-sdk/node` (filesystem store, backend selection). The wire protocol is re-exported
 * here and available alone as `@flock/client-sdk/protocol`.
 */
export { FederatedClient } from './core/client.js';
export type {
  AdoptionOptions,
  ClientEligibility,
  ClientStatus,
  FederatedClientEvents,
  FederatedClientOptions,
  FlockSocket,
  GlobalModelEvaluatedEvent,
  ModelAdoptedEvent,
  PersonalizationOptions,
  RoundAbandonedEvent,
  SocketFactory,
  TrainingProgress,
  UploadedEvent,
  RoundTimings,
  DeltaContext,
  DeviceTokenProvider,
} from './core/client-types.js';
export type { DeviceIdentityInfo } from './core/identity.js';
export {
  CONDITION_KINDS,
  combineValues,
  ConditionMonitor,
  evaluateEligibility,
  ManualCondition,
  manualConditions,
  ObservableCondition,
  staticCondition,
  type ConditionDetector,
  type ConditionKind,
  type ConditionValue,
  type ConditionValues,
  type Eligibility,
  type UnknownConditionPolicy,
} from './core/conditions.js';
export {
  ArrayDataSource,
  loadExampleTensors,
  toExampleTensors,
  toFeatureTensor,
  type ArrayDataSourceInit,
  type DataSource,
  type ExampleTensors,
  type ExampleValues,
  type LocalExamples,
} from './core/data.js';
export { allFinite, applyDelta, computeDelta, encodeDelta, encodedBytes, l2Norm } from './core/delta.js';
export { DEFAULT_ADOPTION_TOLERANCE, DEFAULT_DITTO_LAMBDA, DEFAULT_PERSONALIZATION_METHOD, DEFAULT_UNKNOWN_POLICY } from './core/defaults.js';
export {
  copyLayerWeights,
  dittoUpdate,
  personalizationSettings,
  sameWeightShapes,
  trainOnlyLayers,
  type PersonalizationSettings,
} from './core/personalization.js';
export { toleranceAdoption, type AdoptionDecision, type AdoptionInput, type AdoptionPolicy, type ToleranceAdoptionOptions } from './core/adoption.js';
export { TypedEmitter, type Listener } from './core/emitter.js';
export { errorMessage, FlockClientError, type ClientErrorCode } from './core/errors.js';
export { compressDelta, RESIDUAL_MAX_AGE, storedResidual, usableResidual, type CompressedDelta } from './core/compress-delta.js';
export { resolveLoss, type LossName, type LossSpec } from './core/losses.js';
export {
  concatWeights,
  instantiateModel,
  readWeights,
  snapshotModel,
  splitStoredWeights,
  storedModelFromInitial,
  storedModelFromLayersModel,
  storedModelFromPayload,
  toExactArrayBuffer,
  weightsInSpecOrder,
  type InitialModel,
  type StoredModel,
} from './core/model.js';
export {
  delay,
  yieldToEventLoop,
  type CryptoKeyLike,
  type CryptoKeyPairLike,
  type FetchInitLike,
  type FetchLike,
  type FetchResponseLike,
} from './core/runtime.js';
export { cloneModel, cloneState, MemoryModelStore, MODEL_SLOTS, type ClientState, type KeyStore, type ModelSlot, type ModelStore } from './core/store.js';
export {
  evaluateModel,
  trainModel,
  type BatchProgress,
  type EvaluationResult,
  type LocalTrainingPlan,
  type TrainOptions,
  type TrainResult,
} from './core/training.js';
export { SDK_VERSION } from './core/version.js';
export * from './protocol/index.js';
