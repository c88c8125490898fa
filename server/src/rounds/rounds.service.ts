import { randomInt, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  ConflictException,
  Inject,
  Injectable,
  NotFoundException,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import {
  ServerEvent,
  abandonSchema,
  isRoundFinished,
  type RoundOutcome,
  type RoundStatus,
  type UpdateResult,
  type WeightSpec,
} from '@flock/client-sdk/protocol';
import { createStrategy } from '../aggregation/strategies.js';
import type { RoundAggregator } from '../aggregation/strategy.js';
import { ClientRegistry } from '../clients/client-registry.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ModelsService } from '../models/models.service.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import type { RoundDetails, RoundParams, RoundRecord } from '../contract/index.js';
import { emptyRoundMetrics } from './round-types.js';
import { parseUpload, UploadRejection, validateDelta } from './update-validator.js';

const log = moduleLogger('rounds');

/** In-memory state of the round in flight. The persisted RoundRecord is its durable projection. */
interface ActiveRound {
  record: RoundRecord;
  startedAt: number;
  /** Clients selected and still expected to upload (dropped ones are removed). */
  participants: Set<string>;
  /** Clients whose one upload for this round arrived (accepted or rejected after selection checks). */
  uploaded: Set<string>;
  weightSpecs: WeightSpec[];
  aggregator: RoundAggregator | null;
  weightedLossSum: number;
  deadlineAt: number | null;
  timer: NodeJS.Timeout | null;
  onAvailable: (() => void) | null;
  /** Serializes persistence so transitions reach storage in order. */
  persistence: Promise<void>;
}

function nowIso(): string {
  return new Date().toISOString();
}

/** Fisher-Yates sample of k ids (crypto randomness: selection must not be predictable by clients). */
function sample<T>(items: readonly T[], k: number): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

/**
 * The round engine (Bonawitz et al. 2019): selection, configuration, reporting with streaming
 * aggregation, then commit (quorum reached) or fail (quorum missed). One round at a time.
 */
@Injectable()
export class RoundsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private active: ActiveRound | null = null;
  /** True while start() is between its conflict check and having an active round. */
  private starting = false;
  /** 'changed' after each change of the round in flight (start, transitions, uploads, drops, end); the operator dashboard listens. */
  readonly events = new EventEmitter<{ changed: [roundId: string] }>();

  constructor(
    @Inject(STORAGE) private readonly storage: Storage,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly models: ModelsService,
    private readonly clients: ClientRegistry,
    private readonly metrics: MetricsService,
  ) {}

  /** A round that was in flight when the coordinator died can't resume: its aggregate was in memory. */
  async onApplicationBootstrap(): Promise<void> {
    const stale = await this.storage.findRoundsByStatus(['selecting', 'configuring', 'reporting', 'committing']);
    for (const round of stale) {
      const error = 'coordinator restarted while the round was in flight';
      await this.storage.updateRound(round.id, { status: 'aborted', error, endedAt: nowIso() });
      await this.storage.appendTransition({ roundId: round.id, from: round.status, to: 'aborted', at: nowIso(), note: error });
      log.warn({ roundId: round.id, from: round.status }, 'aborted a round left in flight by a previous run');
    }
    this.clients.events.on('disconnected', (clientId) => this.dropParticipant(clientId, 'disconnected'));
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.active) await this.end(this.active, 'aborted', 'coordinator shutting down');
  }

  activeRoundId(): string | null {
    return this.active?.record.id ?? null;
  }

  /** Starts a round; returns as soon as it is persisted (selection goes on in the background). */
  async start(params: RoundParams): Promise<RoundRecord> {
    if (this.active || this.starting) {
      throw new ConflictException(`round ${this.active?.record.id ?? '(starting)'} is still ${this.active?.record.status ?? 'starting'}; one round at a time`);
    }
    this.starting = true; // claimed synchronously, so concurrent requests can't both pass the check
    try {
      return await this.open(params);
    } finally {
      this.starting = false;
    }
  }

  private async open(params: RoundParams): Promise<RoundRecord> {
    createStrategy(params.strategy, params.strategyOptions);
    const current = await this.models.current();
    if (!current) throw new ConflictException('no global model version exists yet');
    const base = await this.models.get(current.version);
    const at = nowIso();
    const record: RoundRecord = {
      id: randomUUID(),
      baseVersion: current.version,
      status: 'selecting',
      params,
      metrics: emptyRoundMetrics(),
      committedVersion: null,
      error: null,
      createdAt: at,
      updatedAt: at,
      endedAt: null,
    };
    const round: ActiveRound = {
      record,
      startedAt: Date.now(),
      participants: new Set(),
      uploaded: new Set(),
      weightSpecs: base.weightSpecs,
      aggregator: null,
      weightedLossSum: 0,
      deadlineAt: null,
      timer: null,
      onAvailable: null,
      persistence: Promise.resolve(),
    };
    await this.storage.createRound(record);
    await this.storage.appendTransition({ roundId: record.id, from: null, to: 'selecting', at, note: null });
    this.active = round;
    log.info({ roundId: record.id, baseVersion: record.baseVersion, params }, 'round started');
    this.select(round);
    this.events.emit('changed', record.id);
    return { ...record };
  }

  /** Selection: as soon as minClients eligible devices are connected, pick up to target x over-selection. */
  private select(round: ActiveRound): void {
    const { minClients, targetClients, overSelection, selectionTimeoutMs } = round.record.params;
    const trySelect = (): boolean => {
      if (this.active !== round || round.record.status !== 'selecting') return true;
      const available = this.clients.available();
      if (available.length < minClients) return false;
      this.stopSelectionWait(round);
      const wanted = Math.ceil(targetClients * overSelection);
      const chosen = sample(available, Math.min(wanted, available.length));
      round.record.metrics.eligibleAtSelection = available.length;
      void this.configure(round, chosen);
      return true;
    };
    if (trySelect()) return;
    round.onAvailable = () => void trySelect();
    this.clients.events.on('available', round.onAvailable);
    round.timer = setTimeout(() => {
      this.stopSelectionWait(round);
      const available = this.clients.available().length;
      void this.end(round, 'failed', `selection timed out: ${available} eligible client(s) available, ${minClients} needed`);
    }, selectionTimeoutMs);
  }

  private stopSelectionWait(round: ActiveRound): void {
    if (round.onAvailable) this.clients.events.off('available', round.onAvailable);
    round.onAvailable = null;
    if (round.timer) clearTimeout(round.timer);
    round.timer = null;
  }

  /** Configuration: send each selected client the plan; reporting starts with the deadline clock. */
  private async configure(round: ActiveRound, selected: string[]): Promise<void> {
    const { record } = round;
    this.clients.assignRound(selected, record.id);
    selected.forEach((id) => round.participants.add(id));
    record.metrics.selected = selected.length;
    this.transition(round, 'configuring', `${selected.length} client(s) selected`);
    try {
      const strategy = createStrategy(record.params.strategy, record.params.strategyOptions);
      const base = await this.models.get(record.baseVersion);
      round.aggregator = strategy.begin({
        globalWeights: await this.models.getWeights(record.baseVersion),
        serverState: base.strategyState,
      });
      const plan = strategy.configurePlan(record.params.plan);
      round.deadlineAt = Date.now() + record.params.deadlineMs;
      for (const clientId of selected) {
        this.clients.sendTo(clientId, ServerEvent.configure, {
          roundId: record.id,
          modelVersion: record.baseVersion,
          plan,
          deadlineAt: round.deadlineAt,
        });
      }
      this.transition(round, 'reporting', null);
      round.timer = setTimeout(() => void this.closeReporting(round, 'deadline reached'), record.params.deadlineMs);
      log.info({ roundId: record.id, selected: selected.length }, 'round configured');
      this.checkCompletion(round);
    } catch (error) {
      await this.end(round, 'failed', `configuration failed: ${(error as Error).message}`);
    }
  }

  /**
   * Validates one upload and folds it into the running aggregate. Every refusal has a stable
   * reason code, is counted, and never touches the aggregate.
   */
  async handleUpload(clientId: string, payload: unknown): Promise<UpdateResult> {
    const roundIdHint = typeof (payload as { roundId?: unknown } | null)?.roundId === 'string' ? (payload as { roundId: string }).roundId : null;
    const round = this.active && this.active.record.id === roundIdHint ? this.active : null;
    const received = performance.now();
    try {
      const upload = parseUpload(payload, this.config.maxUploadBytes);
      if (round) {
        round.record.metrics.reported++;
        round.record.metrics.bytesReceived += upload.byteLength;
      }
      this.metrics.uploadBytesTotal.inc(upload.byteLength);
      if (!round) throw await this.noActiveRoundRejection(upload.roundId);
      if (round.record.status !== 'reporting') {
        throw new UploadRejection(
          round.record.status === 'committing' ? 'round_closed' : 'round_not_open',
          `round ${round.record.id} is ${round.record.status}, not collecting updates`,
        );
      }
      if (round.uploaded.has(clientId)) throw new UploadRejection('duplicate_upload', `client already uploaded for round ${round.record.id}`);
      if (!round.participants.has(clientId)) throw new UploadRejection('not_selected', `client is not a participant of round ${round.record.id}`);
      round.uploaded.add(clientId);
      if (upload.modelVersion !== round.record.baseVersion) {
        throw new UploadRejection('version_mismatch', `delta is against version ${upload.modelVersion}; round ${round.record.id} trains version ${round.record.baseVersion}`);
      }
      const { delta } = validateDelta(upload, round.weightSpecs, round.record.params.maxUpdateNorm);
      const started = performance.now();
      round.record.metrics.validationMs += started - received;
      round.aggregator!.add({ delta, numExamples: upload.numExamples });
      const foldSeconds = (performance.now() - started) / 1000;
      this.metrics.aggregationSeconds.observe({ phase: 'fold' }, foldSeconds);
      const { metrics } = round.record;
      metrics.aggregationMs += foldSeconds * 1000;
      metrics.accepted++;
      metrics.totalExamples += upload.numExamples;
      round.weightedLossSum += upload.trainLoss * upload.numExamples;
      metrics.meanTrainLoss = round.weightedLossSum / metrics.totalExamples;
      this.metrics.uploadsTotal.inc({ result: 'accepted', reason: '' });
      log.info({ roundId: round.record.id, clientId, numExamples: upload.numExamples }, 'update accepted');
      this.checkCompletion(round);
      return { accepted: true };
    } catch (error) {
      if (!(error instanceof UploadRejection)) throw error;
      this.metrics.uploadsTotal.inc({ result: 'rejected', reason: error.reason });
      if (round) {
        const rejected = round.record.metrics.rejected;
        rejected[error.reason] = (rejected[error.reason] ?? 0) + 1;
        this.checkCompletion(round);
      }
      log.warn({ roundId: roundIdHint, clientId, reason: error.reason, detail: error.message }, 'update rejected');
      return { accepted: false, reason: error.reason, message: error.message };
    } finally {
      if (round) this.events.emit('changed', round.record.id);
    }
  }

  private async noActiveRoundRejection(roundId: string): Promise<UploadRejection> {
    const known = await this.storage.getRound(roundId);
    if (known && isRoundFinished(known.status)) {
      return new UploadRejection('round_closed', `round ${roundId} is ${known.status}; late uploads are not aggregated`);
    }
    return new UploadRejection('round_not_open', `round ${roundId} is not open`);
  }

  /** A selected client abandoned the round (conditions changed, no data, ...). */
  handleAbandon(clientId: string, payload: unknown): void {
    const parsed = abandonSchema.safeParse(payload);
    if (!parsed.success || this.active?.record.id !== parsed.data.roundId) return;
    this.dropParticipant(clientId, parsed.data.reason);
  }

  private dropParticipant(clientId: string, reason: string): void {
    const round = this.active;
    if (!round || !round.participants.has(clientId) || round.uploaded.has(clientId)) return;
    round.participants.delete(clientId);
    const dropped = round.record.metrics.dropped;
    dropped[reason] = (dropped[reason] ?? 0) + 1;
    this.metrics.droppedTotal.inc({ reason });
    log.info({ roundId: round.record.id, clientId, reason }, 'participant dropped');
    this.checkCompletion(round);
    this.events.emit('changed', round.record.id);
  }

  /** Reporting ends early when the target count is reached or every participant has answered. */
  private checkCompletion(round: ActiveRound): void {
    if (round.record.status !== 'reporting') return;
    const { accepted } = round.record.metrics;
    const pending = [...round.participants].filter((id) => !round.uploaded.has(id)).length;
    if (accepted >= round.record.params.targetClients) void this.closeReporting(round, 'target reached');
    else if (pending === 0) void this.closeReporting(round, 'all participants answered');
  }

  private async closeReporting(round: ActiveRound, why: string): Promise<void> {
    if (this.active !== round || round.record.status !== 'reporting') return;
    if (round.timer) clearTimeout(round.timer);
    round.timer = null;
    const { accepted } = round.record.metrics;
    const { minClients } = round.record.params;
    if (accepted < minClients || !round.aggregator) {
      await this.end(round, 'failed', `quorum not reached (${why}): ${accepted} valid update(s), ${minClients} needed`);
      return;
    }
    this.transition(round, 'committing', why);
    try {
      const latest = await this.models.current();
      if (latest?.version !== round.record.baseVersion) {
        await this.end(round, 'failed', `the global model moved to version ${latest?.version} during the round (rollback or registration); updates against version ${round.record.baseVersion} discarded`);
        return;
      }
      const started = performance.now();
      const result = round.aggregator.finish();
      for (const warning of result.warnings ?? []) log.warn({ roundId: round.record.id, strategy: round.record.params.strategy }, warning);
      const finishSeconds = (performance.now() - started) / 1000;
      this.metrics.aggregationSeconds.observe({ phase: 'finish' }, finishSeconds);
      const { metrics } = round.record;
      metrics.aggregationMs += finishSeconds * 1000;
      metrics.updateNorm = result.updateNorm;
      metrics.durationMs = Date.now() - round.startedAt;
      const base = await this.models.get(round.record.baseVersion);
      await round.persistence; // the 'committing' transition must be stored before the commit
      const at = nowIso();
      const weights = new Uint8Array(result.weights.buffer, result.weights.byteOffset, result.weights.byteLength);
      const { model } = await this.storage.commitRound(
        round.record.id,
        {
          parentVersion: base.version,
          roundId: round.record.id,
          source: 'round',
          numParameters: result.weights.length,
          metrics: {
            clients: metrics.accepted,
            totalExamples: metrics.totalExamples,
            meanTrainLoss: metrics.meanTrainLoss,
            updateNorm: metrics.updateNorm,
            strategy: round.record.params.strategy,
          },
          topology: base.topology,
          weightSpecs: base.weightSpecs,
          strategyState: result.serverState,
        },
        weights,
        { status: 'committed', metrics, endedAt: at },
        { roundId: round.record.id, from: 'committing', at, note: why },
      );
      this.models.onVersionCommitted(model, { topology: base.topology, weightSpecs: base.weightSpecs, weights });
      round.record = { ...round.record, status: 'committed', committedVersion: model.version, endedAt: at, updatedAt: at };
      this.metrics.modelVersion.set(model.version);
      this.finishRound(round, 'committed', null, model.version);
      this.clients.broadcast(ServerEvent.modelPublished, { version: model.version, parentVersion: base.version, roundId: round.record.id });
      log.info({ roundId: round.record.id, version: model.version, accepted: metrics.accepted, updateNorm: metrics.updateNorm }, 'round committed');
    } catch (error) {
      log.error({ roundId: round.record.id, err: error }, 'commit failed');
      await this.end(round, 'failed', `commit failed: ${(error as Error).message}`);
    }
  }

  /** Operator cancel. */
  async cancel(roundId: string): Promise<RoundRecord> {
    const round = this.active;
    if (!round || round.record.id !== roundId) {
      const known = await this.storage.getRound(roundId);
      if (!known) throw new NotFoundException(`round ${roundId} not found`);
      throw new ConflictException(`round ${roundId} already ended (${known.status})`);
    }
    await this.end(round, 'aborted', 'cancelled by an operator');
    return round.record;
  }

  /** Ends a round without committing. The global model is untouched. */
  private async end(round: ActiveRound, outcome: 'failed' | 'aborted', error: string): Promise<void> {
    if (this.active !== round) return;
    this.stopSelectionWait(round);
    const from = round.record.status;
    const at = nowIso();
    round.record.metrics.durationMs = Date.now() - round.startedAt;
    round.record = { ...round.record, status: outcome, error, endedAt: at, updatedAt: at };
    this.persist(round, async (storage) => {
      await storage.updateRound(round.record.id, { status: outcome, error, endedAt: at, metrics: round.record.metrics });
      await storage.appendTransition({ roundId: round.record.id, from, to: outcome, at, note: error });
    });
    await round.persistence;
    this.finishRound(round, outcome, error, null);
    log.warn({ roundId: round.record.id, outcome, error }, 'round ended without commit');
  }

  private finishRound(round: ActiveRound, outcome: RoundOutcome, message: string | null, version: number | null): void {
    for (const clientId of new Set([...round.participants, ...round.uploaded])) {
      this.clients.sendTo(clientId, ServerEvent.roundClosed, {
        roundId: round.record.id,
        outcome,
        modelVersion: version,
        ...(message ? { message } : {}),
      });
    }
    this.clients.releaseRound(round.record.id);
    this.metrics.roundsTotal.inc({ outcome });
    this.metrics.roundDurationSeconds.observe({ outcome }, (Date.now() - round.startedAt) / 1000);
    round.aggregator = null; // frees the running sum
    this.active = null;
    this.events.emit('changed', round.record.id);
  }

  private transition(round: ActiveRound, to: RoundStatus, note: string | null): void {
    const from = round.record.status;
    const at = nowIso();
    round.record = { ...round.record, status: to, updatedAt: at };
    const metrics = round.record.metrics;
    this.persist(round, async (storage) => {
      await storage.updateRound(round.record.id, { status: to, metrics });
      await storage.appendTransition({ roundId: round.record.id, from, to, at, note });
    });
    this.events.emit('changed', round.record.id);
  }

  private persist(round: ActiveRound, write: (storage: Storage) => Promise<void>): void {
    round.persistence = round.persistence
      .then(() => write(this.storage))
      .catch((error: unknown) => log.error({ roundId: round.record.id, err: error }, 'failed to persist round state'));
  }

  async list(options: { limit?: number; offset?: number }): Promise<RoundRecord[]> {
    const rounds = await this.storage.listRounds(options);
    return rounds.map((round) => (round.id === this.active?.record.id ? { ...this.active.record } : round));
  }

  /** A round with its transitions; the round in flight shows live metrics from memory. */
  async get(roundId: string): Promise<RoundDetails> {
    const active = this.active?.record.id === roundId ? this.active : null;
    if (active) await active.persistence;
    const record = active ? { ...active.record } : await this.storage.getRound(roundId);
    if (!record) throw new NotFoundException(`round ${roundId} not found`);
    const transitions = await this.storage.listTransitions(roundId);
    const timeLeftMs = active?.deadlineAt ? Math.max(0, active.deadlineAt - Date.now()) : null;
    return { ...record, transitions, timeLeftMs };
  }
}
