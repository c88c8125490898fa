import { abandonSchema, totalValues, uploadRoundSchema, type UpdateResult } from '@flock/client-sdk/protocol';
import { PartialAggregate } from '../aggregation/partial-aggregate.js';
import { clientUpdate, foldSource, type SplitAggregation } from '../aggregation/strategy.js';
import type { ClusterLink } from '../cluster/cluster-link.js';
import type { FlockConfig } from '../config/config.js';
import { moduleLogger, runDetached } from '../logging/logger.js';
import type { MetricsService } from '../metrics/metrics.service.js';
import type { Storage } from '../storage/storage.js';
import type { CollectedPartials } from './aggregation-sink.js';
import { clusterMessageSchema, roundDescriptorSchema, type ClusterMessage, type LeaderMessage, type RoundDescriptor } from './cluster-messages.js';
import { admitUpload, boundInfluence, checkUpdate, parseUpload, UploadRejection } from './upload-intake.js';
import { roundStrategy } from './round-strategy.js';

const log = moduleLogger('rounds');

/** How long a partial stays in Redis: the leader reads it within the collect timeout. */
const PARTIAL_TTL_MS = 120_000;

/**
 * Admission in one atomic step: the round takes uploads (its descriptor is stored), the client has
 * not uploaded yet, and it is a participant; then its one upload is used up (SADD). Answers the
 * descriptor, or 'closed' / 'duplicate' / 'not_selected'. ARGV: prefix, roundId, clientId.
 */
const ADMIT = `local p, rid, id = ARGV[1], ARGV[2], ARGV[3]
local descriptor = redis.call('GET', p .. 'round:' .. rid .. ':open')
if not descriptor then return 'closed' end
if redis.call('SISMEMBER', p .. 'round:' .. rid .. ':answered', id) == 1 then return 'duplicate' end
if redis.call('SISMEMBER', p .. 'round:' .. rid .. ':members', id) == 0 then return 'not_selected' end
redis.call('SADD', p .. 'round:' .. rid .. ':answered', id)
redis.call('PEXPIRE', p .. 'round:' .. rid .. ':answered', ARGV[4])
return descriptor`;

/** This process's share of the round in flight. */
interface LocalShare {
  descriptor: RoundDescriptor;
  split: SplitAggregation;
  partial: PartialAggregate;
  /** Set once handed over to the leader: later uploads are refused (round_closed). */
  sealed: boolean;
}

/**
 * Hierarchical aggregation over coordinator processes (cluster mode; Bonawitz et al. 2019's
 * Aggregators and Master Aggregator). Every process, the leader included, admits the uploads of its
 * own sockets (atomically in Redis), validates and bounds them, folds them into its partial
 * aggregate, and tells the leader each answer over pub/sub, so that the leader's pure round machine
 * advances. At commit the leader asks every live process for its partial (a binary Redis value),
 * waits for them (a dead process, or none within FLOCK_PARTIAL_TIMEOUT_MS, loses only its partial)
 * and combines them (aggregation-sink.ts).
 */
export class ClusterRounds {
  /** DI token: a ClusterRounds in cluster mode, null in one process. */
  static readonly TOKEN = Symbol('CLUSTER_ROUNDS');

  private share: LocalShare | null = null;
  private leaderListener: ((message: LeaderMessage) => void) | null = null;
  private readonly partialWaiters = new Map<string, (from: string, count: number) => void>();

  constructor(
    private readonly link: ClusterLink,
    private readonly config: FlockConfig,
    private readonly storage: Storage,
    private readonly metrics: MetricsService,
  ) {}

  async start(): Promise<void> {
    await this.link.subscribe(this.link.keys.roundsChannel, (message) => this.heard(message));
  }

  get processId(): string {
    return this.link.processId;
  }

  /** The round engine of this process, which hears the answers of the rounds it drives. */
  onLeaderMessage(listener: (message: LeaderMessage) => void): void {
    this.leaderListener = listener;
  }

  /** Another process died (this one leaving the cluster is not a death to react to). */
  onProcessLost(listener: () => Promise<void>): void {
    this.link.onProcessLost(async (processId) => {
      if (processId !== this.processId) await listener();
    });
  }

  // ---- every process: its own sockets' uploads ----

  async handleUpload(clientId: string, payload: unknown, arrivedAt?: number): Promise<UpdateResult> {
    const received = performance.now();
    const named = uploadRoundSchema.safeParse(payload);
    const roundId = named.success ? named.data.roundId : null;
    const answer = { roundId: roundId ?? '', from: this.processId, clientId, admitted: false, bytes: null as number | null, norm: null as number | null };
    try {
      const upload = parseUpload(payload, this.config.maxUploadBytes);
      answer.bytes = upload.byteLength;
      this.metrics.uploadBytesTotal.inc(upload.byteLength);
      const share = await this.admit(upload.roundId, clientId);
      answer.admitted = true;
      const { descriptor } = share;
      // Measured where it will be folded (one copy, as in one process).
      // A compressed upload stays in its bytes: measured here, folded from them (checkUpdate).
      const { delta, norm } = checkUpdate(upload, descriptor, (values) => share.partial.sumOfSquares(values));
      answer.norm = norm;
      const bounded = boundInfluence(delta, norm, upload.numExamples, {
        maxExamples: descriptor.exampleCap,
        bound: descriptor.updateBound,
        config: this.config.updateBound,
        dpClipNorm: descriptor.differentialPrivacy?.clipNorm ?? null,
      });
      // Still this round's, still open: the await above may have let the leader collect it.
      if (this.share !== share || share.sealed) throw new UploadRejection('round_closed', `round ${descriptor.roundId} stopped collecting updates`);
      const started = performance.now();
      const prepared = share.split.prepare(clientUpdate(bounded.delta, bounded.numExamples, bounded.scale, bounded.norm));
      // Still compressed when prepare passed it through (FedAvg family); a wrapper that rebuilt it read the dense delta.
      share.partial.add(foldSource(prepared), prepared.numExamples, upload.trainLoss, prepared.scale);
      const foldMs = performance.now() - started;
      this.metrics.countFoldedUpload(foldMs / 1000, bounded);
      // Told before the device gets its answer: the leader hears of the upload before anything the device does next.
      await this.tell({
        type: 'accepted',
        ...answer,
        numExamples: bounded.numExamples,
        claim: upload.numExamples,
        trainLoss: upload.trainLoss,
        decodeMs: Math.max(0, received - (arrivedAt ?? received)),
        validationMs: started - received,
        foldMs,
        clipped: bounded.clipped,
        clamped: bounded.clamped,
      });
      log.debug({ roundId, clientId, numExamples: bounded.numExamples }, 'update accepted into this process partial');
      return { accepted: true };
    } catch (error) {
      if (!(error instanceof UploadRejection)) throw error;
      this.metrics.uploadsTotal.inc({ result: 'rejected', reason: error.reason });
      if (roundId !== null) await this.tell({ type: 'rejected', ...answer, reason: error.reason });
      log.warn({ roundId, clientId, reason: error.reason, detail: error.message }, 'update rejected');
      return { accepted: false, reason: error.reason, message: error.message };
    }
  }

  /** An abandon goes to the leader, whichever process holds the device's socket. */
  handleAbandon(clientId: string, payload: unknown): void {
    const parsed = abandonSchema.safeParse(payload);
    if (!parsed.success) return;
    runDetached(log, 'forwarding an abandon', this.tell({ type: 'abandon', clientId, ...parsed.data }));
  }

  /** Redis admission, then this process's share of the round (created at its first upload here). */
  private async admit(roundId: string, clientId: string): Promise<LocalShare> {
    const answer = (await this.link.redis.eval(ADMIT, { arguments: [this.link.keys.prefix, roundId, clientId, String(PARTIAL_TTL_MS * 10)] })) as string;
    if (answer === 'duplicate') throw new UploadRejection('duplicate_upload', `client already uploaded for round ${roundId}`);
    if (answer === 'not_selected') throw new UploadRejection('not_selected', `client is not a participant of round ${roundId}`);
    if (answer === 'closed') {
      const status = (await this.storage.getRound(roundId))?.status ?? null;
      // Reporting or committing without a stored descriptor: the leader has sealed it.
      if (status === 'reporting' || status === 'committing') throw new UploadRejection('round_closed', `round ${roundId} stopped collecting updates`);
      admitUpload({ roundId, status, roster: null }, clientId); // throws round_closed / round_not_open
    }
    if (this.share?.descriptor.roundId === roundId) {
      if (this.share.sealed) throw new UploadRejection('round_closed', `round ${roundId} stopped collecting updates`);
      return this.share;
    }
    const descriptor = roundDescriptorSchema.parse(JSON.parse(answer));
    const split = roundStrategy(descriptor, descriptor.expectedUpdates ?? 1).split?.();
    if (!split) throw new Error(`strategy ${descriptor.strategy} cannot be split over processes`);
    const length = totalValues(descriptor.weightSpecs.map((spec) => spec.shape));
    // One round at a time in the cluster: a new round's share replaces any older one.
    this.share = { descriptor, split, partial: new PartialAggregate(length), sealed: false };
    return this.share;
  }

  // ---- the leader ----

  /** How many processes' heartbeats are current, this one included: what a round's upload rate scales with. */
  async liveProcesses(): Promise<number> {
    return (await this.liveProcessIds()).size;
  }

  /** The processes whose heartbeat is current, this one always among them. */
  private async liveProcessIds(): Promise<Set<string>> {
    const live = new Set<string>([this.processId]);
    for (const processId of await this.link.redis.sMembers(this.link.keys.processes)) if (await this.link.isAlive(processId)) live.add(processId);
    return live;
  }

  /** Reporting begins: processes may admit uploads. The descriptor expires on its own should the leader die. */
  async open(descriptor: RoundDescriptor, ttlMs: number): Promise<void> {
    await this.link.redis.set(this.link.keys.roundOpen(descriptor.roundId), JSON.stringify(descriptor), { PX: ttlMs });
  }

  /**
   * Reporting ended: no more admissions; every live process hands over its partial. Waits until
   * each has answered, died, or the timeout passed; those that did not deliver are `lost`.
   */
  async collect(roundId: string, length: number): Promise<CollectedPartials> {
    const { redis, keys } = this.link;
    await redis.del(keys.roundOpen(roundId));
    const expected = await this.liveProcessIds();
    const delivered = new Map<string, number>();
    const deadline = Date.now() + this.config.partialTimeoutMs;
    this.partialWaiters.set(roundId, (from, count) => delivered.set(from, count));
    const lost: string[] = [];
    try {
      await this.link.publish(keys.roundsChannel, { type: 'collect', roundId } satisfies ClusterMessage);
      while ([...expected].some((id) => !delivered.has(id)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        for (const id of expected) {
          if (!delivered.has(id) && !(await this.link.isAlive(id))) {
            expected.delete(id);
            lost.push(id);
          }
        }
      }
    } finally {
      this.partialWaiters.delete(roundId);
    }
    for (const id of expected) if (!delivered.has(id)) lost.push(id);
    const partials: PartialAggregate[] = [];
    for (const [from, count] of delivered) {
      if (count === 0) continue;
      const bytes = await this.link.getBytes(keys.partial(roundId, from));
      try {
        if (!bytes) throw new Error('expired');
        partials.push(PartialAggregate.decode(bytes, length));
      } catch (error) {
        log.error({ roundId, processId: from, err: error }, 'a partial aggregate could not be read: its updates are lost');
        lost.push(from);
      }
    }
    if (lost.length > 0) log.warn({ roundId, lost }, 'partial aggregates lost: those processes stopped mid-round');
    return { partials, lost };
  }

  /** The round ended: processes forget it; its keys go. */
  async close(roundId: string): Promise<void> {
    const { redis, keys } = this.link;
    await this.link.publish(keys.roundsChannel, { type: 'closed', roundId } satisfies ClusterMessage);
    const partials = (await redis.sMembers(keys.processes)).map((processId) => keys.partial(roundId, processId));
    await redis.del([keys.roundOpen(roundId), keys.roundAnswered(roundId), keys.partial(roundId, this.processId), ...partials]);
  }

  // ---- messages ----

  /** Publishes to the round's processes; a failure (Redis unreachable) is logged: the device still gets its answer. */
  private async tell(message: ClusterMessage): Promise<void> {
    try {
      await this.link.publish(this.link.keys.roundsChannel, message);
    } catch (error) {
      log.error({ roundId: message.roundId, type: message.type, err: error }, 'could not tell the round leader');
    }
  }

  private heard(raw: unknown): void {
    const parsed = clusterMessageSchema.safeParse(raw);
    if (!parsed.success) return log.warn('dropped a malformed cluster round message');
    const message = parsed.data;
    switch (message.type) {
      case 'accepted':
      case 'rejected':
      case 'abandon':
        this.leaderListener?.(message);
        break;
      case 'collect':
        runDetached(log, 'handing over the partial aggregate', this.handOver(message.roundId));
        break;
      case 'partial':
        this.partialWaiters.get(message.roundId)?.(message.from, message.count);
        break;
      case 'closed':
        if (this.share?.descriptor.roundId === message.roundId) this.share = null;
        break;
    }
  }

  /** Seals this process's share and stores it for the leader (binary), then says so. */
  private async handOver(roundId: string): Promise<void> {
    const share = this.share?.descriptor.roundId === roundId ? this.share : null;
    if (share) share.sealed = true;
    const count = share?.partial.count ?? 0;
    if (share && count > 0)
      await this.link.redis.set(this.link.keys.partial(roundId, this.processId), Buffer.from(share.partial.encode()), { PX: PARTIAL_TTL_MS });
    await this.tell({ type: 'partial', roundId, from: this.processId, count });
  }
}
