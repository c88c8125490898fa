import { randomUUID } from 'node:crypto';
import { createClient, RESP_TYPES } from 'redis';
import { moduleLogger } from '../logging/logger.js';
import { RedisKeys } from './redis-keys.js';

const log = moduleLogger('cluster');

type RedisClient = ReturnType<typeof createClient>;

/** What a cluster of coordinator processes is configured with. */
export interface ClusterOptions {
  redisUrl: string;
  /** Prefix of every shared key and channel. */
  prefix: string;
  /** A process whose heartbeat is older than this is dead: its devices are purged. */
  processTtlMs: number;
}

type ProcessLostListener = (processId: string) => Promise<void>;

/**
 * This process's membership in a cluster of coordinators sharing one Redis: a command connection,
 * a subscriber connection, a random process id, and a heartbeat key with a TTL. On every beat the
 * process also looks for processes whose heartbeat expired (killed, partitioned) and tells its
 * listeners, which purge what those processes left (their devices, their partials). Several live
 * processes may notice the same death; what listeners do must be idempotent.
 */
export class ClusterLink {
  readonly processId = randomUUID();
  readonly keys: RedisKeys;
  private readonly lostListeners: ProcessLostListener[] = [];
  private readonly evictedListeners: (() => void)[] = [];
  private beats = 0;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();

  private constructor(
    readonly redis: RedisClient,
    private readonly subscriber: RedisClient,
    readonly options: ClusterOptions,
  ) {
    this.keys = new RedisKeys(options.prefix);
  }

  /** Connects both connections and registers this process (first heartbeat). */
  static async connect(options: ClusterOptions): Promise<ClusterLink> {
    const redis = createClient({ url: options.redisUrl });
    const subscriber = redis.duplicate();
    for (const client of [redis, subscriber]) client.on('error', (error: unknown) => log.error({ err: error }, 'redis connection error'));
    await Promise.all([redis.connect(), subscriber.connect()]);
    const link = new ClusterLink(redis, subscriber, options);
    await link.beat();
    link.timer = setInterval(
      () => {
        link.beating = link.beating.then(() => link.beat()).catch((error: unknown) => log.error({ err: error }, 'cluster heartbeat failed'));
      },
      Math.max(50, Math.floor(options.processTtlMs / 3)),
    );
    log.info({ processId: link.processId, prefix: options.prefix }, 'joined the coordinator cluster');
    return link;
  }

  /** Reads a binary value (a partial aggregate) as bytes, not as a string. */
  async getBytes(key: string): Promise<Buffer | null> {
    return this.redis.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get(key);
  }

  onProcessLost(listener: ProcessLostListener): void {
    this.lostListeners.push(listener);
  }

  async isAlive(processId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.processAlive(processId))) === 1;
  }

  async publish(channel: string, message: object): Promise<void> {
    await this.redis.publish(channel, JSON.stringify(message));
  }

  /** Listens to a channel; messages that are not JSON are logged and dropped. */
  async subscribe(channel: string, listener: (message: unknown) => void): Promise<void> {
    await this.subscriber.subscribe(channel, (raw: string) => {
      let message: unknown;
      try {
        message = JSON.parse(raw);
      } catch {
        log.warn({ channel }, 'dropped a cluster message that is not JSON');
        return;
      }
      listener(message);
    });
  }

  /**
   * This process was taken for dead (its heartbeat lapsed: Redis unreachable, or the event loop
   * stalled past the TTL) and the others purged its devices while their sockets stayed open here.
   */
  onEvicted(listener: () => void): void {
    this.evictedListeners.push(listener);
  }

  private async beat(): Promise<void> {
    const { keys, processId } = this;
    const alive = (await this.redis.exists(keys.processAlive(processId))) === 1;
    if (!alive && this.beats > 0) {
      log.warn({ processId }, 'this process missed its heartbeat and was taken for dead: its devices must reconnect');
      for (const listener of this.evictedListeners) listener();
    }
    this.beats++;
    await this.redis.set(keys.processAlive(processId), String(Date.now()), { PX: this.options.processTtlMs });
    await this.redis.sAdd(keys.processes, processId);
    for (const other of await this.redis.sMembers(keys.processes)) {
      if (other === processId || (await this.isAlive(other))) continue;
      log.warn({ processId: other }, 'a coordinator process stopped beating: purging what it left');
      await this.lost(other);
    }
  }

  private async lost(processId: string): Promise<void> {
    for (const listener of this.lostListeners) await listener(processId);
    await this.redis.sRem(this.keys.processes, processId);
  }

  /** Leaves the cluster: stops beating, purges this process's own registrations, closes both connections. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.beating;
    try {
      await this.redis.del(this.keys.processAlive(this.processId));
      await this.lost(this.processId);
    } catch (error) {
      log.error({ err: error }, 'leaving the cluster failed');
    }
    await Promise.allSettled([this.redis.quit(), this.subscriber.quit()]);
  }
}
