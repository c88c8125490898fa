/**
 * FederatedClient: makes an app a federated participant. It connects to the coordinator, reports
 * whether the device is eligible (idle, charging, unmetered), trains the round's global model on
 * local data when selected, uploads only the weight delta, tests every newly published global model
 * on held-out local data before adopting it, and serves predictions from a personalized model that
 * persists across restarts. Examples and labels never leave the device.
 *
 * This class decides which job runs when (one at a time: a round or an evaluation), cancels jobs
 * when conditions, the round or the connection change, and keeps the status. The work itself lives
 * beside it: connection.ts (the socket), eligibility-reporter.ts, round-job.ts, evaluation-job.ts,
 * local-state.ts (persisted state and predict); defaults are named in defaults.ts.
 */
import type * as tf from '@tensorflow/tfjs';
import type { PublicKeyJwk } from '../protocol/device-key.js';
import type { Welcome } from '../protocol/handshake.js';
import { evaluationReportSchema, type ModelPublished } from '../protocol/model-messages.js';
import { ABANDON_REASONS, type AbandonReason } from '../protocol/reasons.js';
import type { RoundClosed, RoundConfiguration, UpdateRejected } from '../protocol/round-messages.js';
import type { ClientEligibility, ClientStatus, FederatedClientEvents, FederatedClientOptions, ModelInfo } from './client-types.js';
import { ConditionMonitor } from './conditions.js';
import { Connection } from './connection.js';
import type { ExampleValues } from './data.js';
import * as defaults from './defaults.js';
import { EligibilityReporter } from './eligibility-reporter.js';
import { TypedEmitter } from './emitter.js';
import { errorMessage, FlockClientError, type ClientErrorCode } from './errors.js';
import { evaluationSettings, runEvaluation, type EvaluationSettings } from './evaluation-job.js';
import { personalizationSettings } from './personalization.js';
import { Job, type CancelReason } from './job.js';
import { LocalState } from './local-state.js';
import { resolveLoss, type LossSpec } from './losses.js';
import type { StoredModel } from './model.js';
import { runRound } from './round-job.js';
import { MemoryModelStore } from './store.js';

const PROTOCOL_ABANDON_REASONS: readonly string[] = ABANDON_REASONS;
/** How many rounds' rejections (reported from the upload's acknowledgement) are remembered, so the coordinator's push of the same rejection is not reported twice. */
const REJECTIONS_REMEMBERED = 64;

export class FederatedClient extends TypedEmitter<FederatedClientEvents> {
  private readonly options: FederatedClientOptions;
  private readonly loss: LossSpec;
  private readonly monitor: ConditionMonitor;
  private readonly unsubscribeMonitor: () => void;
  private readonly local: LocalState;
  private readonly eligibility: EligibilityReporter;
  private readonly evaluateOnlyWhenEligible: boolean;
  private readonly evaluationSettings: EvaluationSettings;
  /** Layers the app keeps on the device: a round whose plan would share one of them is not joined. */
  private readonly appPersonalLayers: readonly string[];

  private currentStatus: ClientStatus = 'idle';
  private started = false;
  private everStarted = false;
  private everConnected = false;
  private connection: Connection | null = null;

  private job: Job | null = null;
  /** Round waiting for the current job to end (blocks evaluations from starting meanwhile). */
  private nextRoundId: string | null = null;
  private pendingEvaluationVersion: number | null = null;
  private failedEvaluationVersion: number | null = null;
  private readonly rejectionsReported = new Set<string>();

  constructor(options: FederatedClientOptions) {
    super((error, event) => {
      // A throwing listener must not break the state machine; report it (unless it was an error listener).
      if (event !== 'error') this.reportError('listener_failed', `a '${String(event)}' listener threw: ${errorMessage(error)}`, { cause: error });
    });
    if (!options.serverUrl) throw new TypeError('FederatedClient: serverUrl is required');
    if (!options.clientToken === !options.deviceToken) throw new TypeError('FederatedClient: give either clientToken or deviceToken');
    if (!options.dataSource) throw new TypeError('FederatedClient: dataSource is required');
    this.options = options;
    this.loss = resolveLoss(options.loss);
    this.evaluateOnlyWhenEligible = options.evaluateOnlyWhenEligible ?? defaults.DEFAULT_EVALUATE_ONLY_WHEN_ELIGIBLE;
    this.local = new LocalState({
      store: options.store ?? new MemoryModelStore(),
      initialModel: options.initialModel,
      initialModelVersion: options.initialModelVersion ?? defaults.DEFAULT_INITIAL_MODEL_VERSION,
      downloadDeltas: options.downloadDeltas ?? false,
      reportError: (error) => this.emit('error', error),
    });
    this.evaluationSettings = evaluationSettings(options);
    personalizationSettings(options.personalization, null); // throws on invalid options, before any start
    this.appPersonalLayers = options.personalization?.method === 'personal-layers' ? [...(options.personalization.personalLayers ?? [])] : [];
    this.monitor = new ConditionMonitor(options.conditions ?? [], options.unknownConditions ?? defaults.DEFAULT_UNKNOWN_POLICY);
    this.eligibility = new EligibilityReporter(this.monitor, options.dataSource, {
      changed: (eligibility) => this.emit('eligibilityChange', eligibility),
      send: (report) => this.connection?.reportConditions(report) ?? false,
      error: (error) => this.emit('error', error),
    });
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

  /**
   * The client id: the RFC 7638 thumbprint of the device's public key, which is also the `cnf.jkt`
   * an enrolment token must carry (available after `load()` or `start()`).
   */
  get clientId(): string | null {
    return this.local.identity?.clientId ?? null;
  }

  /** The device's public key as a JWK, for the app's backend to bind a device token to (after `load()`). */
  get publicKey(): PublicKeyJwk | null {
    return this.local.identity?.info.publicKey ?? null;
  }

  /** What predict() uses and where local state stands. */
  get modelInfo(): ModelInfo {
    return this.local.info;
  }

  /**
   * Loads persisted state (device key, personalized model, cached global model; a new key is made
   * and saved on the first load) without connecting: enough for offline `predict()` and for
   * `clientId`. `start()` calls it; calling it twice is harmless.
   */
  load(): Promise<void> {
    return this.local.load();
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
    if (!this.started && !this.connection) return;
    this.started = false;
    this.nextRoundId = null;
    const job = this.job;
    if (job) {
      job.cancel('stopped');
      await job.done;
    }
    const connection = this.connection;
    this.connection = null;
    this.eligibility.forgetSent();
    connection?.close();
    this.refreshStatus();
  }

  /** stop(), then frees the models' memory and closes the store; the client cannot be reused. */
  async dispose(): Promise<void> {
    await this.stop();
    this.unsubscribeMonitor();
    this.monitor.close();
    await this.local.dispose();
  }

  /**
   * Predicts with the personalized model (or, before one exists, the last global model fetched).
   * Works offline from persisted state. Accepts a tensor or arrays (one row per example, or a single
   * example); returns a tensor the caller disposes.
   */
  predict(input: tf.Tensor | ExampleValues): Promise<tf.Tensor> {
    return this.local.predict(input);
  }

  // ---------------------------------------------------------------- connection and conditions

  private connect(): void {
    const { serverUrl, clientToken, deviceToken, socketOptions, socketFactory, fetch } = this.options;
    const identity = this.local.identity!;
    const credential = typeof deviceToken === 'function' ? async () => deviceToken(identity.info) : async () => deviceToken ?? clientToken!;
    this.connection = new Connection(
      {
        serverUrl,
        credential,
        credentialRefreshes: typeof deviceToken === 'function',
        credentialRetryMs: this.options.credentialRetryMs ?? defaults.DEFAULT_CREDENTIAL_RETRY_MS,
        identity,
        requestTimeoutMs: this.options.requestTimeoutMs ?? defaults.DEFAULT_REQUEST_TIMEOUT_MS,
        socketOptions,
        socketFactory,
        fetch,
      },
      {
        connected: () => this.onConnected(),
        connectFailed: () => {
          this.everConnected = true; // a failed attempt: offline until it succeeds
          this.refreshStatus();
        },
        disconnected: () => this.onDisconnected(),
        welcome: (welcome) => this.onWelcome(welcome),
        configure: (configuration) => this.inBackground('training_failed', this.onConfigure(configuration)),
        roundClosed: (closed) => this.onRoundClosed(closed),
        modelPublished: (published) => this.onModelPublished(published),
        updateRejected: (rejection) => this.onUpdateRejected(rejection),
        error: (error) => this.emit('error', error),
      },
    );
  }

  private onConnected(): void {
    this.everConnected = true;
    this.eligibility.forgetSent();
    this.refreshStatus();
    this.reportEligibility();
  }

  private onDisconnected(): void {
    this.eligibility.forgetSent();
    // The coordinator counts a selected client that disconnects as dropped: stop its round.
    if (this.job?.kind === 'round') this.job.cancel('disconnected');
    this.refreshStatus();
  }

  private onWelcome(welcome: Welcome): void {
    this.emit('connected', welcome);
    const current = welcome.currentModelVersion;
    // Catch up with a version published while this device was offline.
    if (current !== null && current > this.local.lastEvaluatedVersion) this.queueEvaluation(current);
  }

  private onConditionsChanged(): void {
    const { eligible } = this.monitor.eligibility;
    const job = this.job;
    if (!eligible && job && (job.kind === 'round' || this.evaluateOnlyWhenEligible)) job.cancel('conditions_changed');
    this.reportEligibility();
    if (eligible && this.failedEvaluationVersion !== null) {
      const version = this.failedEvaluationVersion;
      this.failedEvaluationVersion = null;
      this.queueEvaluation(version);
    } else if (eligible) {
      this.maybeStartEvaluation();
    }
  }

  // ---------------------------------------------------------------- jobs

  private runJob(job: Job, body: () => Promise<void>): void {
    this.job = job;
    this.refreshStatus();
    job.done = (async () => {
      try {
        await body();
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

  /** The global model of `version` for a job: cached locally, else fetched over the current connection. */
  private globalModel(connection: Connection, version: number): Promise<StoredModel> {
    return this.local.globalModel(version, (wanted, deltaFrom) => connection.fetchModel(wanted, deltaFrom));
  }

  // ---------------------------------------------------------------- rounds

  private async onConfigure(configuration: RoundConfiguration): Promise<void> {
    if (this.job?.roundId === configuration.roundId || this.nextRoundId === configuration.roundId) return; // duplicate
    this.nextRoundId = configuration.roundId;
    const previous = this.job;
    if (previous) {
      // The coordinator only configures clients it considers free: a newer round replaces the old one.
      previous.cancel('superseded');
      await previous.done;
    }
    const connection = this.connection;
    if (this.nextRoundId !== configuration.roundId || !this.started || !connection) return; // replaced or stopped meanwhile
    this.nextRoundId = null;
    const job = new Job('round', configuration.roundId, () => this.refreshStatus());
    this.runJob(job, () => this.round(job, configuration, connection));
  }

  private onRoundClosed(closed: RoundClosed): void {
    if (this.job?.roundId === closed.roundId) this.job.cancel('round_closed');
    if (this.nextRoundId === closed.roundId) this.nextRoundId = null;
    this.afterOwnUpload(closed.roundId, () => this.emit('roundClosed', closed));
  }

  /**
   * Runs `report` once this device's upload for `roundId` has its answer, if one is on its way: the
   * coordinator may close a round (the upload completing it) before its acknowledgement reaches
   * the device, and the app should hear `uploaded` before the `roundClosed` and `modelPublished`
   * that followed it. Otherwise at once.
   */
  private afterOwnUpload(roundId: string | null, report: () => void): void {
    const job = this.job;
    if (roundId !== null && job?.roundId === roundId && job.phase === 'uploading')
      job.done.then(report, report); // done settles either way
    else report();
  }

  private async round(job: Job, configuration: RoundConfiguration, connection: Connection): Promise<void> {
    const { roundId } = configuration;
    if (!this.monitor.eligibility.eligible) return this.abandon(roundId, 'conditions_changed');
    if (Date.now() >= configuration.deadlineAt) return this.abandon(roundId, 'deadline');
    const planned = configuration.plan.personalization ?? null;
    const personalLayers = planned?.method === 'personal-layers' ? (planned.personalLayers ?? []) : [];
    const shared = this.appPersonalLayers.filter((layer) => !personalLayers.includes(layer));
    if (shared.length > 0) {
      this.reportError('training_failed', `round ${roundId} would upload the personal layers ${shared.join(', ')}: not joining`, { roundId });
      return this.abandon(roundId, 'training_failed');
    }
    await this.local.rememberPlanPersonalization(planned);
    this.emit('roundJoined', configuration);
    const outcome = await runRound(configuration, {
      job,
      connection,
      dataSource: this.options.dataSource,
      loss: this.loss,
      transformDelta: this.options.transformDelta,
      personalLayers,
      state: this.local,
      globalModel: (version) => this.globalModel(connection, version),
      progress: (progress) => this.emit('trainingProgress', progress),
      residual: this.local,
      reportError: (error) => this.emit('error', error),
    });
    if ('abandoned' in outcome) {
      if (outcome.error) this.emit('error', outcome.error);
      return this.abandon(roundId, outcome.abandoned);
    }
    this.emit('uploaded', outcome.uploaded);
    const { result } = outcome.uploaded;
    if (result.accepted) return;
    if (this.rejectionsReported.size >= REJECTIONS_REMEMBERED) this.rejectionsReported.clear(); // only recent rounds matter
    this.rejectionsReported.add(roundId);
    this.reportError('upload_rejected', `upload for round ${roundId} rejected (${result.reason}): ${result.message}`, { roundId, rejection: result.reason });
  }

  private onUpdateRejected(rejection: UpdateRejected): void {
    const key = rejection.roundId ?? '';
    // The acknowledgement of our own upload carries the same rejection and is reported from there.
    if (this.rejectionsReported.has(key) || (this.job?.roundId === key && this.job.phase === 'uploading')) return;
    this.reportError('upload_rejected', `upload rejected (${rejection.reason}): ${rejection.message}`, {
      rejection: rejection.reason,
      ...(rejection.roundId ? { roundId: rejection.roundId } : {}),
    });
  }

  private abandon(roundId: string, reason: CancelReason): void {
    if (PROTOCOL_ABANDON_REASONS.includes(reason)) this.connection?.abandon({ roundId, reason: reason as AbandonReason });
    this.emit('roundAbandoned', { roundId, reason });
  }

  // ---------------------------------------------------------------- evaluation and personalization

  private onModelPublished(published: ModelPublished): void {
    this.afterOwnUpload(published.roundId, () => {
      this.emit('modelPublished', published);
      this.queueEvaluation(published.version);
    });
  }

  private queueEvaluation(version: number): void {
    if (version <= this.local.lastEvaluatedVersion) return;
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
    const connection = this.connection;
    if (version === null || this.job || this.nextRoundId || !this.started || !connection?.connected) return;
    if (this.evaluateOnlyWhenEligible && !this.monitor.eligibility.eligible) return;
    const job = new Job('evaluation', null, () => this.refreshStatus());
    this.runJob(job, () => this.evaluate(job, version, connection));
  }

  /** A cancelled evaluation stays pending and runs again later. */
  private async evaluate(job: Job, version: number, connection: Connection): Promise<void> {
    const outcome = await runEvaluation(version, {
      ...this.evaluationSettings,
      personalization: personalizationSettings(this.options.personalization, this.local.planPersonalization),
      job,
      state: this.local,
      dataSource: this.options.dataSource,
      loss: this.loss,
      globalModel: (wanted) => this.globalModel(connection, wanted),
      progress: (progress) => this.emit('trainingProgress', progress),
      error: (error) => this.emit('error', error),
    });
    if (!outcome) return;
    if (this.pendingEvaluationVersion !== null && this.pendingEvaluationVersion <= version) this.pendingEvaluationVersion = null;
    const { report, decision, adopted } = outcome;
    // Numbers outside the protocol's bounds (a non-finite or huge loss) stay on the device: the coordinator would refuse them.
    if (report && evaluationReportSchema.safeParse(report).success) this.connection?.reportEvaluation(report);
    this.emit('globalModelEvaluated', { modelVersion: version, report, decision });
    if (adopted) this.emit('modelAdopted', adopted);
  }

  // ---------------------------------------------------------------- status and errors

  private refreshStatus(): void {
    let status: ClientStatus;
    if (this.job) status = this.job.phase;
    else if (!this.started) status = this.everStarted ? 'stopped' : 'idle';
    else if (this.connection?.connected) status = 'waiting';
    else status = this.everConnected ? 'offline' : 'connecting';
    if (status === this.currentStatus) return;
    const previous = this.currentStatus;
    this.currentStatus = status;
    this.emit('statusChange', { status, previous });
  }

  private reportError(code: ClientErrorCode, message: string, details: FlockClientError['details'] = {}): void {
    this.emit('error', new FlockClientError(code, message, details));
  }

  private reportEligibility(): void {
    this.inBackground('data_source_failed', this.eligibility.report());
  }

  /** Work nobody awaits: a failure becomes an `error` event, never an unhandled rejection in the app. */
  private inBackground(code: ClientErrorCode, task: Promise<void>): void {
    task.catch((error: unknown) => this.reportError(error instanceof FlockClientError ? error.code : code, errorMessage(error), { cause: error }));
  }
}
