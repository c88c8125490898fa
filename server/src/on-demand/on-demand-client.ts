/**
 * The caller's side of model-on-demand: `request(input, shape)` publishes a prediction request to
 * the request queue (persistent, publisher-confirmed) and resolves with its reply. Replies come back
 * on this client's own exclusive, auto-delete queue. Delivery is at-least-once (a processor killed
 * after replying but before acknowledging has its request answered again by another one), so the
 * client resolves each request once and drops, and counts, any further reply with the same request
 * id. Import it as `@flock/server/on-demand-client`.
 */
import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import {
  ON_DEMAND_CONTENT_TYPE,
  ON_DEMAND_DEFAULT_QUEUE,
  ON_DEMAND_HEADERS,
  onDemandErrorReplySchema,
  onDemandOkReplySchema,
  onDemandRequestIdSchema,
  type DeadLetterReason,
} from '../contract/index.js';
import { connectBroker } from './broker.js';
import { checkShape, float32Bytes, readFloat32 } from './request-codec.js';
import { declareTopology } from './topology.js';

export interface OnDemandReply {
  requestId: string;
  modelVersion: number;
  /** The first output's values, row-major, and its shape (rows first). */
  output: Float32Array;
  shape: number[];
  /** Rows in the batch that computed it. */
  batchSize: number;
  /** The processor that answered. */
  processor: string;
  /** Whether the request had been delivered before (to a processor that died holding it). */
  redelivered: boolean;
}

/** The processor refused the request (it is in the dead-letter queue). */
export class OnDemandRequestError extends Error {
  override readonly name = 'OnDemandRequestError';
  constructor(
    readonly requestId: string,
    readonly reason: DeadLetterReason,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

export class OnDemandTimeoutError extends Error {
  override readonly name = 'OnDemandTimeoutError';
}

export interface OnDemandClientOptions {
  /** The request queue (default `flock.on-demand`). */
  queue?: string;
  /** How long a request waits for its reply by default. */
  timeoutMs?: number;
  /** Answered request ids remembered to drop duplicates (oldest forgotten first). */
  rememberAnswered?: number;
}

export interface OnDemandClientStats {
  sent: number;
  answered: number;
  failed: number;
  timedOut: number;
  /** Replies to a request already answered: at-least-once delivery's repeats, dropped. */
  duplicates: number;
  /** Replies to no request of this client (answered after its timeout, or unknown), dropped. */
  unmatched: number;
  /** Replies whose headers break the contract, dropped. */
  malformed: number;
}

interface Pending {
  resolve: (reply: OnDemandReply) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class OnDemandClient {
  readonly stats: OnDemandClientStats = { sent: 0, answered: 0, failed: 0, timedOut: 0, duplicates: 0, unmatched: 0, malformed: 0 };
  private readonly pending = new Map<string, Pending>();
  private readonly answered = new Set<string>();
  private closed = false;

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: ConfirmChannel,
    private readonly queue: string,
    private readonly replyQueue: string,
    private readonly timeoutMs: number,
    private readonly rememberAnswered: number,
  ) {}

  static async connect(amqpUrl: string, options: OnDemandClientOptions = {}): Promise<OnDemandClient> {
    const queue = options.queue ?? ON_DEMAND_DEFAULT_QUEUE;
    const connection = await connectBroker(amqpUrl);
    try {
      const channel = await connection.createConfirmChannel();
      await declareTopology(channel, queue);
      const { queue: replyQueue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      const client = new OnDemandClient(connection, channel, queue, replyQueue, options.timeoutMs ?? 30_000, options.rememberAnswered ?? 100_000);
      connection.on('error', () => undefined);
      connection.on('close', () => client.failAll(new Error('the broker connection closed')));
      await channel.consume(replyQueue, (message) => client.onReply(message), { noAck: true });
      return client;
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends `input` (row-major, `shape` rows first, e.g. `[1, 784]`) and resolves with the reply.
   * Rejects with OnDemandRequestError when the processor refused it, OnDemandTimeoutError after the
   * timeout. `requestId` defaults to a random UUID; a caller that retries passes the same one.
   */
  request(input: Float32Array, shape: readonly number[], options: { requestId?: string; timeoutMs?: number } = {}): Promise<OnDemandReply> {
    if (this.closed) return Promise.reject(new Error('the on-demand client is closed'));
    const requestId = onDemandRequestIdSchema.parse(options.requestId ?? randomUUID());
    const checkedShape = checkShape(shape, input.length);
    if (this.pending.has(requestId)) return Promise.reject(new Error(`request ${requestId} is already in flight`));
    return new Promise<OnDemandReply>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      const timer = setTimeout(() => {
        if (this.pending.delete(requestId)) {
          this.stats.timedOut++;
          reject(new OnDemandTimeoutError(`no reply to request ${requestId} within ${timeoutMs} ms`));
        }
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.stats.sent++;
      try {
        this.channel.publish(
          '',
          this.queue,
          float32Bytes(input),
          {
            messageId: requestId,
            correlationId: requestId,
            replyTo: this.replyQueue,
            contentType: ON_DEMAND_CONTENT_TYPE,
            persistent: true,
            headers: { [ON_DEMAND_HEADERS.shape]: checkedShape },
          },
          (error) => {
            if (error) this.settle(requestId, null, new Error(`the broker did not take request ${requestId}`));
          },
        );
      } catch (error) {
        this.settle(requestId, null, error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.failAll(new Error('the on-demand client is closed'));
    this.closed = true;
    await this.connection.close().catch(() => undefined);
  }

  private onReply(message: ConsumeMessage | null): void {
    if (message === null) {
      this.failAll(new Error('the broker cancelled the reply consumer'));
      return;
    }
    const requestId = message.properties.correlationId as unknown;
    const headers: Record<string, unknown> = message.properties.headers ?? {};
    const common = { requestId, processor: headers[ON_DEMAND_HEADERS.processor] };
    const ok = onDemandOkReplySchema.safeParse({
      ...common,
      status: headers[ON_DEMAND_HEADERS.status],
      modelVersion: headers[ON_DEMAND_HEADERS.modelVersion],
      shape: headers[ON_DEMAND_HEADERS.shape],
      batchSize: headers[ON_DEMAND_HEADERS.batchSize],
      redelivered: headers[ON_DEMAND_HEADERS.redelivered],
    });
    if (ok.success) {
      const output = readFloat32(message.content);
      if (output.length !== ok.data.shape.reduce((p, d) => p * d, 1)) {
        this.stats.malformed++;
        return;
      }
      const { status: _, ...fields } = ok.data;
      this.settle(ok.data.requestId, { ...fields, output }, null);
      return;
    }
    const failed = onDemandErrorReplySchema.safeParse({
      ...common,
      status: headers[ON_DEMAND_HEADERS.status],
      reason: headers[ON_DEMAND_HEADERS.reason],
      message: headers[ON_DEMAND_HEADERS.message],
    });
    if (failed.success) {
      this.settle(failed.data.requestId, null, new OnDemandRequestError(failed.data.requestId, failed.data.reason, failed.data.message));
      return;
    }
    this.stats.malformed++;
  }

  /** Resolves or rejects a request once; later replies with its id are counted and dropped. */
  private settle(requestId: string, reply: OnDemandReply | null, error: Error | null): void {
    const pending = this.pending.get(requestId);
    if (!pending) {
      if (this.answered.has(requestId)) this.stats.duplicates++;
      else this.stats.unmatched++;
      return;
    }
    this.pending.delete(requestId);
    clearTimeout(pending.timer);
    this.answered.add(requestId);
    if (this.answered.size > this.rememberAnswered) this.answered.delete(this.answered.values().next().value!);
    if (reply) {
      this.stats.answered++;
      pending.resolve(reply);
    } else {
      this.stats.failed++;
      pending.reject(error!);
    }
  }

  private failAll(error: Error): void {
    for (const [requestId, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(requestId);
      this.stats.failed++;
      pending.reject(error);
    }
  }
}
