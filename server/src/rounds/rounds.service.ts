import { randomUUID } from 'node:crypto';
import {
  BadRequestException,
  ConflictException,
  Inject,
  Injectable,
  NotFoundException,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import {
  ClientEvent,
  ServerEvent,
  abandonSchema,
  isRoundFinished,
  uploadRoundSchema,
  type RoundOutcome,
  type SecAggAck,
  type UpdateResult,
} from '@flock/client-sdk/protocol';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { DEVICE_DIRECTORY, type DeviceDirectory } from '../devices/device-directory.js';
import { FlockEventBus } from '../events/event-bus.js';
import type { FlockEvents } from '../events/flock-events.js';
import { moduleLogger, runDetached } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { budgetRefusal } from '../privacy/ledger.js';
import { ModelsService } from '../models/models.service.js';
import { ROUND_LEASES, type RoundLease, type RoundLeases } from '../storage/round-lease.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import { ActiveRound } from './active-round.js';
import { LocalAggregationSink, SplitAggregationSink } from './aggregation-sink.js';
import type { LeaderMessage, RoundDescriptor } from './cluster-messages.js';
import { ClusterRounds } from './cluster-rounds.js';
import { RoundCommitter } from './round-commit.js';
import { RoundMessenger } from './round-messenger.js';
import { UploadEndpoints } from '../uploads/upload-endpoints.js';
import { advance, openRound, type RoundEffect, type RoundEvent, type RoundTimer } from './round-machine.js';
import { canSelect, type ReportingEnd } from './round-policy.js';
import type { RoundDetails, RoundParams, RoundRecord } from '../contract/index.js';
import { emptyRoundMetrics } from './round-types.js';
import { selectParticipants } from './selection.js';
import { StaleRounds } from './stale-rounds.js';
import { clientUpdate, type RoundAggregator } from '../aggregation/strategy.js';
import { roundStrategy } from './round-strategy.js';
import { SecureAggregationSink } from './secure/secure-aggregation-sink.js';
import { secureMaxWeight, secureRoundRefusal } from './secure/secure-round-check.js';
import { binaryBytes, SecureRound, type SecurePhaseEvent } from './secure/secure-round.js';
import {
  admitUpload,
  boundInfluence,
  checkUpdate,
  parseUpload,
  UploadRejection,
  type BoundedUpdate,
  type DeltaSource,
  type UploadTarget,
} from './upload-intake.js';
import { personalLayersProblemOf, planPersonalLayers } from './personal-layers.js';
import { nextEstimate, nextExampleCap, roundBound, roundExampleCap } from './update-bound.js';

const log = moduleLogger('rounds');
/** Versions whose download bytes are kept for the round that will train them. */
const SERVED_VERSIONS = 4;

function nowIso(): string {
  return new Date().toISOString();
}

/**
 * The round engine's I/O around the pure round machine (round-machine.ts): it feeds the machine
 * events (device availability, uploads, drops, timers, commit results) and carries out the
 * effects it returns (storage, timers, sending through the device directory, the bus). One round
 * at a time.
 */
@Injectable()
export class RoundsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private active: ActiveRound | null = null;
  /** True while start() is between its conflict check and having an active round. */
  private starting = false;
  /** The adaptive update bound's estimate and example cap (update-bound.ts): from the newest committed round, null before any. */
  private boundEstimate: number | null = null;
  private exampleCap: number | null = null;
  /** Adaptive DP clipping: the C the next such round starts from (the newest committed one's nextDpClipNorm), null before any. */
  private adaptiveClipNorm: number | null = null;
  /** Weight bytes sent per version (model:fetch), for the newest few versions: a round's bytesDown starts from its base's. */
  private readonly servedBytes = new Map<number, number>();
  /** Plans and ends, to many participants at a time. */
  private readonly messenger: RoundMessenger;
  private readonly staleRounds: StaleRounds;

  constructor(
    @Inject(STORAGE) private readonly storage: Storage,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    @Inject(DEVICE_DIRECTORY) private readonly devices: DeviceDirectory,
    private readonly models: ModelsService,
    private readonly committer: RoundCommitter,
    private readonly bus: FlockEventBus,
    private readonly metrics: MetricsService,
    @Inject(ROUND_LEASES) private readonly leases: RoundLeases,
    /** Cluster mode (FLOCK_REDIS_URL): uploads are folded per process and combined by the leader. */
    @Inject(ClusterRounds.TOKEN) private readonly cluster: ClusterRounds | null = null,
    @Inject(UploadEndpoints) private readonly uploadEndpoints: UploadEndpoints | null = null,
  ) {
    this.messenger = new RoundMessenger(devices, config.pace, uploadEndpoints);
    this.staleRounds = new StaleRounds(storage, devices, leases, cluster);
  }

  private readonly onDeviceAvailable = (): void => {
    if (this.active) runDetached(log, 'selection', this.trySelect(this.active));
  };
  private readonly onDeviceDisconnected = ({ clientId }: FlockEvents['device.disconnected']): void => {
    this.active?.secure?.deviceLeft(clientId);
    this.dropParticipant(clientId, 'disconnected');
  };

  /**
   * A round that was in flight when the coordinator died can't resume: its aggregate was in memory.
   * With several processes, only when none drives it (this process can take the round lease).
   */
  async onApplicationBootstrap(): Promise<void> {
    if (!(await this.staleRounds.abortIfUndriven('coordinator restarted while the round was in flight')))
      log.info('another coordinator process drives a round: its round in flight is left to it');
    await this.restoreBoundEstimate();
    const ledger = (await this.models.current())?.privacy;
    if (ledger) this.metrics.recordPrivacy(ledger, this.config.privacy.delta);
    if (this.config.privacy.budget) this.metrics.dpEpsilonBudget.set(this.config.privacy.budget.epsilon);
    this.cluster?.onLeaderMessage(this.onClusterMessage);
    this.cluster?.onProcessLost(() => this.reapStaleRounds());
    this.bus.on('device.available', this.onDeviceAvailable);
    this.bus.on('device.disconnected', this.onDeviceDisconnected);
  }

  /** A coordinator process died: if it drove a round, nobody drives it now; whoever takes the lease first aborts it. */
  private async reapStaleRounds(): Promise<void> {
    if (this.active || this.starting) return;
    await this.staleRounds.abortIfUndriven('the coordinator process driving the round stopped');
  }

  /**
   * The estimates survive restarts in the round records: the newest committed round's
   * nextUpdateBound and nextExampleCap, and the newest adaptive DP round's nextDpClipNorm.
   */
  private async restoreBoundEstimate(): Promise<void> {
    // Newest first; a hundred rounds without a commit start the estimates afresh.
    const committed = (await this.storage.listRounds({ limit: 100 })).filter((round) => round.status === 'committed');
    this.boundEstimate = committed[0]?.metrics.nextUpdateBound ?? null;
    this.exampleCap = committed[0]?.metrics.nextExampleCap ?? null;
    this.adaptiveClipNorm = committed.find((round) => round.metrics.nextDpClipNorm !== null)?.metrics.nextDpClipNorm ?? null;
    this.metrics.updateBound.set(roundBound(this.config.updateBound, this.boundEstimate) ?? 0);
  }

  async onApplicationShutdown(): Promise<void> {
    this.bus.off('device.available', this.onDeviceAvailable);
    this.bus.off('device.disconnected', this.onDeviceDisconnected);
    const round = this.active;
    if (!round) return;
    await round.commitInFlight;
    await this.dispatch(round, { type: 'shutdown' });
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
    let lease: RoundLease | null = null;
    try {
      lease = await this.leases.tryAcquire();
      if (!lease) {
        throw new ConflictException(
          'another coordinator process is driving a round (it holds the round lease); one round at a time: start the next once it has ended, on any process',
        );
      }
      // Holding the lease, nobody drives a round still marked in flight: its process died (kill -9).
      await this.staleRounds.abort('the coordinator process driving the round stopped');
      if (lease.fence !== null) await this.restoreBoundEstimate(); // several processes: another may have committed since
      const record = await this.open(params, lease);
      lease = null; // the round holds it now, until it closes
      return record;
    } finally {
      this.starting = false;
      await lease?.release();
    }
  }

  private async open(requested: RoundParams, lease: RoundLease): Promise<RoundRecord> {
    // The plan states the hard cap (devices report no more); the weight cap below it adapts.
    const maxExamplesPerUpdate = requested.plan.maxExamplesPerUpdate ?? this.config.maxExamplesPerUpdate;
    const params = { ...requested, plan: { ...requested.plan, maxExamplesPerUpdate } };
    const strategy = roundStrategy(params);
    if (this.cluster && params.differentialPrivacy?.adaptiveClipping) {
      throw new BadRequestException('adaptive DP clipping runs on one coordinator process; in cluster mode give differentialPrivacy a fixed clipNorm');
    }
    if (this.cluster && !strategy.split?.()) {
      throw new BadRequestException(
        `strategy "${params.strategy}" needs every update in one process and cannot run over several coordinator processes (cluster mode); use one of the weighted-mean family: fedavg, fedavgm, fedprox, fedadagrad, fedadam, fedyogi`,
      );
    }
    const secureRefusal = secureRoundRefusal(params, this.cluster !== null);
    if (secureRefusal) throw new BadRequestException(secureRefusal);
    const current = await this.models.current();
    if (!current) throw new ConflictException('no global model version exists yet');
    const dp = params.differentialPrivacy;
    const refusal = budgetRefusal(current.privacy, dp, this.config.privacy.budget);
    if (refusal) throw dp ? new ConflictException(refusal) : new BadRequestException(refusal);
    const base = await this.models.get(current.version);
    const personalProblem = personalLayersProblemOf(params.plan, base.weightSpecs);
    if (personalProblem) throw new BadRequestException(`personalization: ${personalProblem}`);
    const at = nowIso();
    const record: RoundRecord = {
      id: randomUUID(),
      baseVersion: current.version,
      status: 'selecting',
      params,
      metrics: {
        ...emptyRoundMetrics(),
        // A DP round clips every update to its own C instead: the request's, or where adaptive clipping moved it.
        updateBound: dp ? null : roundBound(this.config.updateBound, this.boundEstimate),
        dpClipNorm: dp ? (dp.adaptiveClipping ? (this.adaptiveClipNorm ?? dp.clipNorm) : dp.clipNorm) : null,
        // Devices fetch a new version when it is published (to test it), before any round trains it.
        bytesDown: this.servedBytes.get(current.version) ?? 0,
        exampleCap: roundExampleCap(maxExamplesPerUpdate, this.exampleCap),
      },
      committedVersion: null,
      error: null,
      createdAt: at,
      updatedAt: at,
      endedAt: null,
    };
    await this.storage.createRound(record);
    await this.storage.appendTransition({ roundId: record.id, from: null, to: 'selecting', at, note: null });
    const opened = openRound(params);
    const round = new ActiveRound(record, opened.state, base.weightSpecs, this.storage);
    round.lease = lease;
    this.active = round;
    log.info({ roundId: record.id, baseVersion: record.baseVersion, params }, 'round started');
    await this.execute(round, opened.effects);
    this.changed(round);
    runDetached(log, 'selection', this.trySelect(round));
    return { ...record };
  }

  /**
   * Selection: once minClients devices are available (an O(1) count on every availability event),
   * sample the participants from them (one scan, selection.ts) and let the machine decide.
   */
  private async trySelect(round: ActiveRound): Promise<void> {
    const policy = round.record.params;
    if (round.state.status !== 'selecting' || !canSelect(policy, await this.devices.availableCount())) return;
    const { participants, selectable } = selectParticipants(await this.devices.available(), policy, { maxPerAddress: this.config.maxSelectedPerAddress });
    await this.dispatch(round, { type: 'devicesAvailable', available: selectable, participants });
  }

  /**
   * Validates one upload (upload-intake.ts) and folds it into the running aggregate. Every refusal
   * has a stable reason code, is counted, and never touches the aggregate. `arrivedAt`
   * (performance.now() when the upload's last packet arrived, before socket.io decoded it) dates the
   * decode that ran before this handler; absent, the intake is timed from here. A `borrowed`
   * upload's bytes are valid only until this call returns (the HTTP listener's shared buffer, or its
   * slot's region of the round's receive area, which the aggregator folds in place): a
   * strategy that keeps updates until the round's end gets a copy.
   */
  async handleUpload(clientId: string, payload: unknown, arrivedAt?: number, { borrowed = false } = {}): Promise<UpdateResult> {
    // In a cluster: folded in this process's partial; the leader hears the answer.
    if (this.cluster) return this.cluster.handleUpload(clientId, payload, arrivedAt);
    const received = performance.now();
    const named = uploadRoundSchema.safeParse(payload);
    const roundIdHint = named.success ? named.data.roundId : null;
    const round = this.active && this.active.record.id === roundIdHint ? this.active : null;
    let admitted = false;
    try {
      const upload = parseUpload(payload, this.config.maxUploadBytes);
      round?.countReceived(upload.byteLength);
      this.metrics.uploadBytesTotal.inc(upload.byteLength);
      admitUpload(round ? { roundId: upload.roundId, status: round.state.status, roster: round.roster } : await this.otherRound(upload.roundId), clientId);
      admitted = true;
      const inFlight = round!; // only the round in flight admits uploads
      const aggregator = inFlight.aggregator!;
      if (borrowed && inFlight.keepsUploads) upload.data = upload.data.slice();
      // A compressed upload stays in its bytes: measured here, folded from them (checkUpdate).
      const { delta, norm } = checkUpdate(
        upload,
        {
          roundId: inFlight.record.id,
          baseVersion: inFlight.record.baseVersion,
          weightSpecs: inFlight.weightSpecs,
          maxUpdateNorm: inFlight.record.params.maxUpdateNorm,
          personalLayers: planPersonalLayers(inFlight.record.params.plan),
          compression: inFlight.record.params.plan.compression,
        },
        // The aggregator's kernel measures the upload where it will fold it (one copy, wasm SIMD).
        aggregator.sumOfSquares ? (values) => aggregator.sumOfSquares!(values) : undefined,
      );
      inFlight.norms.push(norm);
      const bounded = boundInfluence(delta, norm, upload.numExamples, {
        maxExamples: inFlight.record.metrics.exampleCap ?? this.config.maxExamplesPerUpdate,
        bound: inFlight.record.metrics.updateBound,
        config: this.config.updateBound,
        dpClipNorm: inFlight.record.metrics.dpClipNorm,
      });
      this.fold(inFlight, bounded, upload.trainLoss, { arrivedAt: arrivedAt ?? received, received });
      inFlight.countBytesUp(upload.byteLength);
      inFlight.claims.push(upload.numExamples);
      log.debug({ roundId: inFlight.record.id, clientId, numExamples: bounded.numExamples, clipped: bounded.clipped }, 'update accepted');
      // Not awaited: the device gets its answer before any round:closed its upload may cause.
      runDetached(log, 'round transition', this.dispatch(inFlight, { type: 'uploadAccepted' }));
      return { accepted: true };
    } catch (error) {
      if (!(error instanceof UploadRejection)) throw error;
      this.metrics.uploadsTotal.inc({ result: 'rejected', reason: error.reason });
      round?.countRejected(error.reason);
      if (round && admitted) runDetached(log, 'round transition', this.dispatch(round, { type: 'uploadRejected' }));
      log.warn({ roundId: roundIdHint, clientId, reason: error.reason, detail: error.message }, 'update rejected');
      return { accepted: false, reason: error.reason, message: error.message };
    } finally {
      if (round) this.changed(round);
    }
  }

  /**
   * A device was sent `bytes` of weight data of `version` (model:fetch). A round counts those of
   * its base version: sent before it opened (kept per version here) and while it runs.
   */
  countModelServed(version: number, bytes: number): void {
    this.servedBytes.set(version, (this.servedBytes.get(version) ?? 0) + bytes);
    while (this.servedBytes.size > SERVED_VERSIONS) this.servedBytes.delete(this.servedBytes.keys().next().value!);
    const round = this.active;
    if (round && round.record.baseVersion === version && !isRoundFinished(round.state.status)) round.countBytesDown(bytes);
  }

  /**
   * A secure round's device message (secagg-messages.ts). Advertising keys is the device's answer
   * while the round reports (counted like an accepted upload: it joins the sum's candidates); the
   * later phases go to the round's protocol as the commit drives it.
   */
  async handleSecureMessage(clientId: string, event: typeof ClientEvent.secAggAdvertise | SecurePhaseEvent, payload: unknown): Promise<SecAggAck> {
    const ack = await this.secureMessage(clientId, event, payload);
    this.metrics.secAggMessagesTotal.inc({ event, result: ack.accepted ? 'accepted' : 'refused', reason: ack.accepted ? '' : ack.reason });
    return ack;
  }

  private async secureMessage(clientId: string, event: typeof ClientEvent.secAggAdvertise | SecurePhaseEvent, payload: unknown): Promise<SecAggAck> {
    const round = this.active;
    const secure = round?.secure;
    if (!round || !secure) return { accepted: false, reason: 'round_not_open', message: 'no secure round is in flight' };
    if (event !== ClientEvent.secAggAdvertise) {
      const ack = secure.receive(event, clientId, payload);
      if (ack.accepted) {
        // The masked input is this round's upload: its bytes count like a plain upload's. bytesUp counts every phase's.
        if (event === ClientEvent.secAggMasked) round.record.metrics.bytesReceived += (payload as { data: ArrayBuffer | Uint8Array }).data.byteLength;
        round.countBytesUp(binaryBytes(payload));
      }
      return ack;
    }
    if (round.state.status !== 'reporting')
      return { accepted: false, reason: 'wrong_phase', message: `round ${round.id} is ${round.state.status}, not taking keys` };
    if (!round.roster.isParticipant(clientId))
      return { accepted: false, reason: 'not_participant', message: `client is not a participant of round ${round.id}` };
    if (round.roster.hasAnswered(clientId)) return { accepted: false, reason: 'duplicate', message: 'keys already advertised' };
    const ack = await secure.advertise(clientId, payload);
    if (ack.accepted && this.active === round && !round.roster.hasAnswered(clientId)) {
      round.roster.answer(clientId);
      round.record.metrics.reported++;
      round.countBytesUp(binaryBytes(payload));
      runDetached(log, 'round transition', this.dispatch(round, { type: 'uploadAccepted' }));
    }
    this.changed(round);
    return ack;
  }

  /** An upload naming a round other than the one in flight: finished, or unknown. */
  private async otherRound(roundId: string): Promise<UploadTarget> {
    const known = await this.storage.getRound(roundId);
    return { roundId, status: known?.status ?? null, roster: null };
  }

  /** Folds an accepted (bounded) update into the running aggregate, timed. */
  private fold(round: ActiveRound, update: BoundedUpdate<DeltaSource>, trainLoss: number, at: { arrivedAt: number; received: number }): void {
    const { delta, numExamples, scale, norm, clipped, clamped } = update;
    const started = performance.now();
    round.aggregator!.add(clientUpdate(delta, numExamples, scale, norm));
    const foldSeconds = (performance.now() - started) / 1000;
    this.metrics.countFoldedUpload(foldSeconds, { clipped, clamped });
    const timing = { decodeMs: Math.max(0, at.received - at.arrivedAt), validationMs: started - at.received, foldMs: foldSeconds * 1000 };
    round.countAccepted(numExamples, trainLoss, timing, { clipped, clamped });
  }

  /** A selected client abandoned the round (conditions changed, no data, ...). */
  handleAbandon(clientId: string, payload: unknown): void {
    if (this.cluster) return this.cluster.handleAbandon(clientId, payload); // to the leader, wherever it runs
    const parsed = abandonSchema.safeParse(payload);
    if (!parsed.success || this.active?.record.id !== parsed.data.roundId) return;
    this.dropParticipant(clientId, parsed.data.reason);
  }

  /**
   * Cluster mode, the leader: another process (or this one) answered an upload of the round in
   * flight, or a participant abandoned through it. The same bookkeeping as a local upload, then the
   * same machine events.
   */
  private readonly onClusterMessage = (message: LeaderMessage): void => {
    const round = this.active;
    if (!round || round.record.id !== message.roundId) return;
    if (message.type === 'abandon') return this.dropParticipant(message.clientId, message.reason);
    if (message.bytes !== null) round.countReceived(message.bytes);
    if (message.norm !== null) round.norms.push(message.norm);
    if (message.admitted) round.roster.answer(message.clientId);
    if (message.type === 'accepted') {
      round.claims.push(message.claim);
      if (message.bytes !== null) round.countBytesUp(message.bytes);
      round.countAccepted(message.numExamples, message.trainLoss, message, message);
      runDetached(log, 'round transition', this.dispatch(round, { type: 'uploadAccepted' }));
    } else {
      round.countRejected(message.reason);
      if (message.admitted) runDetached(log, 'round transition', this.dispatch(round, { type: 'uploadRejected' }));
    }
    this.changed(round);
  };

  private dropParticipant(clientId: string, reason: string): void {
    const round = this.active;
    if (!round || !round.roster.drop(clientId)) return;
    round.countDropped(reason);
    this.metrics.droppedTotal.inc({ reason });
    log.info({ roundId: round.record.id, clientId, reason }, 'participant dropped');
    runDetached(log, 'round transition', this.dispatch(round, { type: 'participantDropped' }));
  }

  /** Operator cancel. */
  async cancel(roundId: string): Promise<RoundRecord> {
    const round = this.active;
    if (!round || round.record.id !== roundId) {
      const known = await this.storage.getRound(roundId);
      if (!known) throw new NotFoundException(`round ${roundId} not found`);
      if (this.cluster && !isRoundFinished(known.status))
        throw new ConflictException(`round ${roundId} is driven by another coordinator process: cancel it there`);
      throw new ConflictException(`round ${roundId} already ended (${known.status})`);
    }
    // A commit whose transaction has begun is not undone: it finishes first, and the cancel is refused.
    await round.commitInFlight;
    if (!(await this.dispatch(round, { type: 'cancelled' }))) throw new ConflictException(`round ${roundId} already ended (${round.state.status})`);
    return round.record;
  }

  /**
   * Feeds one event to the machine and carries out its effects. Returns false when the machine's
   * table refused the event (the round moved on meanwhile: a late timer, a duplicate selection).
   */
  private async dispatch(round: ActiveRound, event: RoundEvent): Promise<boolean> {
    if (this.active !== round) return false;
    const step = advance(round.state, event, round.record.params);
    if (!step.accepted) {
      log.debug({ roundId: round.record.id, event: event.type, reason: step.reason }, 'round event refused');
      return false;
    }
    round.state = step.state;
    await this.execute(round, step.effects);
    this.changed(round);
    return true;
  }

  private async execute(round: ActiveRound, effects: readonly RoundEffect[]): Promise<void> {
    for (const effect of effects) {
      switch (effect.type) {
        case 'persistTransition':
          round.recordTransition(effect.from, effect.to, effect.note);
          break;
        case 'startTimer':
          this.startTimer(round, effect.timer, effect.ms);
          break;
        case 'clearTimer':
          round.clearTimer();
          break;
        case 'assignParticipants':
          round.roster.enrol(effect.participants);
          round.record.metrics.eligibleAtSelection = effect.eligible;
          round.record.metrics.selected = effect.participants.length;
          await this.devices.assign(effect.participants, round.record.id);
          break;
        case 'prepareConfiguration':
          runDetached(log, 'configuration', this.prepareConfiguration(round));
          break;
        case 'sendConfigure':
          round.deadlineAt = effect.deadlineAt;
          await round.stored(); // devices hear of reporting once it is stored, as of the round's end
          // Cluster mode: every process may admit the round's uploads from now on.
          await this.cluster?.open(this.describe(round), effect.deadlineAt - Date.now() + 60_000);
          await this.messenger.configure(Array.from(round.roster.members()), {
            roundId: round.record.id,
            baseVersion: round.record.baseVersion,
            plan: round.plan!,
            weightSpecs: round.weightSpecs,
            deadlineAt: effect.deadlineAt,
            processes: this.cluster ? await this.cluster.liveProcesses() : 1,
            ...(round.record.params.secureAggregation
              ? {
                  secureAggregation: {
                    clipNorm: round.record.params.secureAggregation.clipNorm,
                    thresholdFraction: round.record.params.secureAggregation.thresholdFraction,
                    keyAgreement: round.record.params.secureAggregation.keyAgreement,
                  },
                }
              : {}),
          });
          break;
        case 'commit':
          runDetached(log, 'commit', this.commit(round, effect.note));
          break;
        case 'recordCommit':
          round.recordCommit(effect.version, effect.at);
          break;
        case 'closeRound':
          await this.closeRound(round, effect.outcome, effect.message, effect.version);
          break;
        case 'publishVersion':
          await this.devices.broadcast(ServerEvent.modelPublished, { version: effect.version, parentVersion: effect.parentVersion, roundId: round.record.id });
          this.bus.emit('version.committed', { version: effect.version, parentVersion: effect.parentVersion, roundId: round.record.id });
          break;
      }
    }
  }

  private startTimer(round: ActiveRound, timer: RoundTimer, ms: number): void {
    round.timer = setTimeout(() => {
      round.timer = null;
      runDetached(log, 'round timer', this.onTimer(round, timer));
    }, ms);
  }

  private async onTimer(round: ActiveRound, timer: RoundTimer): Promise<void> {
    if (timer === 'deadline') await this.dispatch(round, { type: 'deadlineReached' });
    else await this.dispatch(round, { type: 'selectionTimedOut', available: await this.devices.availableCount() });
  }

  /** Configuration: the strategy's aggregator over the base weights, and the plan each participant gets. */
  private async prepareConfiguration(round: ActiveRound): Promise<void> {
    const { record } = round;
    try {
      const dp = record.params.differentialPrivacy;
      // DP rounds divide by the expected number of updates: q times the devices sampled from.
      if (dp) record.metrics.expectedUpdates = dp.samplingRate * record.metrics.eligibleAtSelection;
      const strategy = roundStrategy(record.params, record.metrics.expectedUpdates ?? 1, record.metrics.dpClipNorm ?? undefined);
      const base = await this.models.get(record.baseVersion);
      const context = { globalWeights: await this.models.getWeights(record.baseVersion), serverState: base.strategyState };
      const { cluster } = this;
      const secure = record.params.secureAggregation;
      if (secure) {
        const split = strategy.split?.();
        if (!split) throw new Error(`strategy ${strategy.name} needs individual updates: not with secure aggregation`);
        round.secure = new SecureRound({
          roundId: record.id,
          baseVersion: record.baseVersion,
          deltaLength: context.globalWeights.length,
          maxWeight: secureMaxWeight(record.params, record.metrics.exampleCap ?? this.config.maxExamplesPerUpdate),
          minClients: record.params.minClients,
          params: secure,
          ...(dp ? { noiseMultiplier: dp.noiseMultiplier } : {}),
          send: {
            roster: (clientId, roster) => this.devices.sendTo(clientId, ServerEvent.secAggRoster, roster),
            relay: (clientId, relay) => this.devices.sendTo(clientId, ServerEvent.secAggRelay, relay),
            unmask: (clientId, request) => this.devices.sendTo(clientId, ServerEvent.secAggUnmask, request),
          },
        });
        round.sink = new SecureAggregationSink(round.secure, split, context);
      } else if (cluster) {
        const split = strategy.split?.();
        if (!split) throw new Error(`strategy ${strategy.name} cannot be split over processes`);
        round.sink = new SplitAggregationSink(split, context, () => cluster.collect(record.id, context.globalWeights.length));
      } else {
        round.aggregator = strategy.begin(context);
        round.sink = new LocalAggregationSink(round.aggregator);
        // The weighted means fold each update as it comes; the others (robust) hold them until the end.
        round.keepsUploads = !strategy.split?.();
        this.openReceiveArea(round, round.aggregator, 4 * context.globalWeights.length);
      }
      round.plan = strategy.configurePlan(record.params.plan);
    } catch (error) {
      await this.dispatch(round, { type: 'configurationFailed', message: (error as Error).message });
      return;
    }
    if (await this.dispatch(round, { type: 'configured', deadlineAt: Date.now() + record.params.deadlineMs })) {
      log.info({ roundId: record.id, selected: record.metrics.selected }, 'round configured');
    }
  }

  /**
   * When the round's uploads go to the HTTP listener and its aggregator folds each where it lies
   * (RoundAggregator.receiveArea: the weighted means, on the wasm kernel), the listener's thread
   * writes them into the aggregator's memory, so that this thread measures and folds them without
   * copying them. Closed with the round (closeRound). Only for the round in flight: one cancelled
   * while it was being configured never gets one.
   */
  private openReceiveArea(round: ActiveRound, aggregator: RoundAggregator, modelBytes: number): void {
    const endpoints = this.uploadEndpoints;
    const slots = endpoints?.areaSlotsFor(modelBytes) ?? 0;
    if (!endpoints || slots === 0 || round.keepsUploads || this.active !== round) return;
    const area = aggregator.receiveArea?.(slots) ?? null;
    if (area) endpoints.openArea(round.record.id, area);
  }

  /**
   * Commit: the committer finishes the aggregate, then (if the round is still committing once its
   * committing transition is stored) writes the new version and the round's end in one transaction.
   */
  private async commit(round: ActiveRound, why: ReportingEnd): Promise<void> {
    try {
      const prepared = await this.committer.prepare(round);
      if ('refused' in prepared) {
        await this.dispatch(round, { type: 'commitFailed', message: prepared.refused });
        return;
      }
      await round.stored();
      if (round.state.status !== 'committing') return; // cancelled meanwhile: nothing is written
      let settle!: () => void;
      round.commitInFlight = new Promise((resolve) => (settle = resolve));
      try {
        // Stored with the commit, so that a restarted coordinator resumes from it.
        // A DP round's norms and claims stay out of later rounds' bounds: only its noisy model is released.
        const dp = round.record.params.differentialPrivacy !== null;
        const next = dp ? this.boundEstimate : nextEstimate(this.config.updateBound, this.boundEstimate, round.norms);
        const nextCap = dp
          ? this.exampleCap
          : this.config.adaptiveExampleCap
            ? nextExampleCap(this.config.maxExamplesPerUpdate, this.exampleCap, round.claims)
            : null;
        const nextDpClipNorm = prepared.result.nextClipNorm ?? null;
        Object.assign(round.record.metrics, { nextUpdateBound: next, nextExampleCap: nextCap, nextDpClipNorm });
        const stored = await this.committer.write(round, prepared, why);
        this.boundEstimate = next;
        this.exampleCap = nextCap;
        if (nextDpClipNorm !== null) this.adaptiveClipNorm = nextDpClipNorm;
        this.metrics.updateBound.set(roundBound(this.config.updateBound, next) ?? 0);
        await this.dispatch(round, { type: 'commitSucceeded', ...stored });
      } finally {
        settle();
      }
    } catch (error) {
      log.error({ roundId: round.id, err: error }, 'commit failed');
      await this.dispatch(round, { type: 'commitFailed', message: `commit failed: ${(error as Error).message}` });
    }
  }

  /** The round's end reaches storage first, then the participants; then its devices are free again. */
  private async closeRound(round: ActiveRound, outcome: RoundOutcome, message: string | null, version: number | null): Promise<void> {
    await round.stored();
    const closed = { roundId: round.record.id, outcome, modelVersion: version, ...(message ? { message } : {}) };
    await this.messenger.closed(Array.from(round.roster.members()), closed);
    await this.devices.release(round.record.id);
    this.metrics.roundsTotal.inc({ outcome });
    this.metrics.roundDurationSeconds.observe({ outcome }, (Date.now() - round.startedAt) / 1000);
    round.aggregator = null; // frees the running sum
    round.sink = null;
    this.uploadEndpoints?.closeArea(round.record.id); // with `active` below, in one turn: see UploadIngress.bytesOf
    round.secure?.dispose();
    round.secure = null;
    this.active = null;
    try {
      await this.cluster?.close(round.record.id);
    } finally {
      await round.lease?.release(); // whatever happened above: the next round may run on any process
      round.lease = null;
    }
    if (outcome !== 'committed') log.warn({ roundId: round.record.id, outcome, error: message }, 'round ended without commit');
  }

  /** What the other processes need of the round to take its uploads. */
  private describe(round: ActiveRound): RoundDescriptor {
    const { record } = round;
    return {
      roundId: record.id,
      leader: this.cluster!.processId,
      baseVersion: record.baseVersion,
      weightSpecs: [...round.weightSpecs],
      maxUpdateNorm: record.params.maxUpdateNorm,
      personalLayers: planPersonalLayers(record.params.plan),
      ...(record.params.plan.compression ? { compression: record.params.plan.compression } : {}),
      exampleCap: record.metrics.exampleCap ?? this.config.maxExamplesPerUpdate,
      updateBound: record.metrics.updateBound,
      strategy: record.params.strategy,
      strategyOptions: record.params.strategyOptions,
      differentialPrivacy: record.params.differentialPrivacy && { ...record.params.differentialPrivacy, clipNorm: record.metrics.dpClipNorm! },
      expectedUpdates: record.metrics.expectedUpdates,
    };
  }

  private changed(round: ActiveRound): void {
    this.bus.emit('round.changed', { roundId: round.record.id, status: round.state.status });
  }

  async list(options: { limit?: number; offset?: number }): Promise<RoundRecord[]> {
    const rounds = await this.storage.listRounds(options);
    return rounds.map((round) => (round.id === this.active?.record.id ? { ...this.active.record } : round));
  }

  /** A round with its transitions; the round in flight shows live metrics from memory. */
  async get(roundId: string): Promise<RoundDetails> {
    const active = this.active?.record.id === roundId ? this.active : null;
    if (active) await active.stored();
    const record = active ? { ...active.record } : await this.storage.getRound(roundId);
    if (!record) throw new NotFoundException(`round ${roundId} not found`);
    const transitions = await this.storage.listTransitions(roundId);
    const timeLeftMs = active?.deadlineAt ? Math.max(0, active.deadlineAt - Date.now()) : null;
    return { ...record, transitions, timeLeftMs };
  }
}
