/**
 * Every default value of the SDK, named and documented in one place (an option left out of
 * `FederatedClientOptions` or of a helper's options takes the value here). Platform-neutral: plain
 * values only, so the core, the browser adapter and the Node adapter all read them from here.
 */
import type { AdoptionOptions } from './client-types.js';
import type { ConditionValue, UnknownConditionPolicy } from './conditions.js';
import type { LossName } from './losses.js';
import type { PersonalizationMethod } from '../protocol/personalization.js';

// ---------------------------------------------------------------- connection

/** Acknowledged requests (model fetch, upload) fail when the coordinator has not answered after this long. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * After the app's deviceToken function failed, or the coordinator refused an expired device token,
 * the next connection attempt (with a fresh token) waits this long.
 */
export const DEFAULT_CREDENTIAL_RETRY_MS = 30_000;

/**
 * socket.io-client options applied before the app's `socketOptions`. `forceNew`: socket.io otherwise
 * shares one connection between clients of the same URL, and each client needs its own handshake.
 */
export const DEFAULT_SOCKET_OPTIONS = { forceNew: true } as const;

// ---------------------------------------------------------------- device conditions

/** What an 'unknown' condition means: not eligible (a device that cannot tell whether it is charging does not train). */
export const DEFAULT_UNKNOWN_POLICY: UnknownConditionPolicy = 'ineligible';

// ---------------------------------------------------------------- local state and training

/** The global version of a bundled `initialModel` when the app does not say: unknown. */
export const DEFAULT_INITIAL_MODEL_VERSION: number | null = null;

/** Loss for training and evaluation (global models travel without a training configuration). */
export const DEFAULT_LOSS: LossName = 'categoricalCrossentropy';

/** Share of examples `ArrayDataSource.fromExamples` holds out for testing global models. */
export const DEFAULT_TEST_FRACTION = 0.2;

// ---------------------------------------------------------------- evaluation and adoption

/** Test newly published global models only while eligible: downloading and fine-tuning are work like training. */
export const DEFAULT_EVALUATE_ONLY_WHEN_ELIGIBLE = true;

/** Examples per batch when evaluating a model on local held-out data. */
export const DEFAULT_EVALUATION_BATCH_SIZE = 256;

/** Largest drop of the adoption metric from the personalized model to a new global one that still adopts it. */
export const DEFAULT_ADOPTION_TOLERANCE = 0.02;

/** The metric the adoption rule compares (higher accuracy is better). */
export const DEFAULT_ADOPTION_METRIC: NonNullable<AdoptionOptions['metric']> = 'accuracy';

/** What to do with a global model that fails the adoption test: keep the personalized model. */
export const DEFAULT_ON_REJECTED: NonNullable<AdoptionOptions['onRejected']> = 'keep';

// ---------------------------------------------------------------- personalization (fine-tuning an adopted model)

/** How a device personalizes when neither the app nor the round's plan says: fine-tuning the adopted global model. */
export const DEFAULT_PERSONALIZATION_METHOD: PersonalizationMethod = 'fine-tune';

/** Ditto's proximal weight lambda (Li et al. 2021 tune it in 0.05-2): the personal model may drift from the global one by about sqrt(2 * loss / lambda). */
export const DEFAULT_DITTO_LAMBDA = 0.1;

/** Epochs of local fine-tuning applied to an adopted global model (0 = use it as is). */
export const DEFAULT_FINE_TUNE_EPOCHS = 1;

/** Batch size of local fine-tuning. */
export const DEFAULT_FINE_TUNE_BATCH_SIZE = 32;

/** Plain SGD learning rate of local fine-tuning. */
export const DEFAULT_FINE_TUNE_LEARNING_RATE = 0.01;

// ---------------------------------------------------------------- browser adapter

/** No input on the page for this long counts as idle. */
export const DEFAULT_IDLE_AFTER_MS = 60_000;

/** What a hidden page says about idleness: unknown (the user may be busy in another app). */
export const DEFAULT_WHEN_HIDDEN: ConditionValue = 'unknown';

/** `browserConditions` also asks the Idle Detection API (where the user already permitted it). */
export const DEFAULT_USE_IDLE_DETECTION_API = true;

/** IndexedDB database of `IndexedDbModelStore` (one per client: use other names for several clients in an origin). */
export const DEFAULT_DATABASE_NAME = 'flock-client-sdk';

/** Backends `initBrowserBackend` tries, in order (WebGL only on a real GPU). */
export const DEFAULT_BROWSER_BACKENDS = ['webgl', 'wasm', 'cpu'] as const;

// ---------------------------------------------------------------- Node adapter

/** Backends `initNodeBackend` tries, in order (tfjs-node only when its native addon loads). */
export const DEFAULT_NODE_BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
