/**
 * The event processor of model-on-demand: consumes prediction requests from the request queue with
 * a prefetch window, predicts them in batches (the serving module's worker threads and dynamic
 * batcher), publishes each reply to the requester's `reply_to` queue with its request id as
 * `correlation_id`, and acknowledges a request only once the broker confirmed its reply (publisher
 * confirms). A processor killed at any point leaves its unacknowledged requests to the broker, which
 * delivers them again (to another processor): at-least-once, with the caller de-duplicating by
 * request id (`OnDemandClient`). Malformed requests are answered with an error where possible and
 * moved to the dead-letter queue with their reason.
 */
import { hostname } from 'node:os';
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { ON_DEMAND_CONTENT_TYPE, ON_DEMAND_HEADERS, versionAnnouncementSchema } from '../contract/index.js';
import { connectBroker } from './broker.js';
import { moduleLogger } from '../logging/logger.js';
import { DynamicBatcher, type BatchResult, type BatchRunner } from '../serving/dynamic-batcher.js';
import { InferencePool } from '../serving/inference-pool.js';
import type { ModelSource } from './model-source.js';
import { ProcessorMetrics } from './processor-metrics.js';
import { ProcessorModels } from './processor-models.js';
import { decodeRequest, float32Bytes, type RefusedOnDemandRequest } from './request-codec.js';
import { declareTopology, type OnDemandQueues } from './topology.js';

const log = moduleLogger('on-demand');

export interface ProcessorOptions {
  amqpUrl: string;
  /** The request queue (its dead-letter exchange and queue are named after it). */
  queue: string;
  /** The fanout exchange new versions are announced on. */
  versionsExchange: string;
  source: ModelSource;
  /** A pinned version, or `follow` the current one. */
  version: number | 'follow';
  /** Unacknowledged requests the broker lets this processor hold: the batching window. */
  prefetch: number;
  maxBatch: number;
  /** How long a free worker waits for a batch to fill. */
  maxDelayMs: number;
  workers: number;
  /** Following: how often the current version is also polled (announcements can be missed while disconnected). */
  pollMs: number;
  /** Metrics are logged this often (when they changed) and at the end. */
  metricsEveryMs: number;
}

export class OnDemandProcessor {
  readonly id = `${hostname()}:${process.pid}`;
  readonly metrics = new ProcessorMetrics();
  private pool: InferencePool | null = null;
  private models: ProcessorModels | null = null;
  private batcher: DynamicBatcher | null = null;
  private connection: ChannelModel | null = null;
  private channel: ConfirmChannel | null = null;
  private queues: OnDemandQueues | null = null;
  private consumerTag: string | null = null;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private failed!: (error: Error) => void;
  /** Rejects when the broker connection or channel is lost: the caller exits, the broker redelivers. */
  readonly lost = new Promise<never>((_, reject) => {
    this.failed = reject;
  });

  constructor(private readonly options: ProcessorOptions) {
    this.lost.catch(() => undefined);
  }

  async start(): Promise<void> {
    const { options } = this;
    this.pool = new InferencePool(options.workers);
    await this.pool.start();
    const pool = this.pool;
    const runner: BatchRunner = {
      idleWorkers: () => pool.idleWorkers(),
      setIdleListener: (listener) => pool.setIdleListener(listener),
      run: (version, rows, input) => {
        this.metrics.batch(rows);
        return pool.run(version, rows, input);
      },
    };
    this.batcher = new DynamicBatcher(runner, { maxBatchSize: options.maxBatch, maxQueueDelayMs: options.maxDelayMs, maxQueue: options.prefetch * 2 });
    this.models = new ProcessorModels(pool, options.source, options.version, log, (next, previous) => {
      this.metrics.currentVersion = next;
      if (previous !== null) this.metrics.versionSwitches++;
    });
    // The model first: nothing is taken from the queue before it can be answered.
    await this.models.start();

    this.connection = await connectBroker(options.amqpUrl);
    this.connection.on('error', (error: Error) => log.error({ err: error }, 'broker connection error'));
    this.connection.on('close', () => this.fail(new Error('the broker connection closed')));
    const channel = await this.connection.createConfirmChannel();
    this.channel = channel;
    channel.on('error', (error: Error) => log.error({ err: error }, 'broker channel error'));
    channel.on('close', () => this.fail(new Error('the broker channel closed')));
    this.queues = await declareTopology(channel, options.queue);
    if (this.models.following) await this.listenForVersions(channel);
    await channel.prefetch(options.prefetch);
    const { consumerTag } = await channel.consume(options.queue, (message) => this.onRequest(message), { noAck: false });
    this.consumerTag = consumerTag;
    this.every(options.metricsEveryMs, () => this.logMetrics());
    log.info(
      { queue: options.queue, version: this.models.current?.version, following: this.models.following, processor: this.id },
      'event processor consuming',
    );
  }

  /** Stops taking requests, lets those in hand finish (up to `graceMs`), then closes. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    if (this.channel && this.consumerTag) await this.channel.cancel(this.consumerTag).catch(() => undefined);
    const deadline = Date.now() + graceMs;
    while (this.metrics.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    this.logMetrics(true);
    await this.connection?.close().catch(() => undefined);
    await this.pool?.close();
  }

  private async listenForVersions(channel: ConfirmChannel): Promise<void> {
    const { versionsExchange, pollMs } = this.options;
    await channel.assertExchange(versionsExchange, 'fanout', { durable: true });
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, versionsExchange, '');
    await channel.consume(
      queue,
      (message) => {
        if (!message) return;
        let body: unknown;
        try {
          body = JSON.parse(message.content.toString('utf8'));
        } catch {
          body = null;
        }
        const announcement = versionAnnouncementSchema.safeParse(body);
        if (announcement.success) void this.models!.consider(announcement.data.version).catch(() => undefined);
        else log.warn('ignored a malformed version announcement');
      },
      { noAck: true },
    );
    // Polling as well: an announcement made while this processor was disconnected or starting is not lost.
    this.every(pollMs, () => {
      this.models!.consider('current').catch(() => undefined);
    });
  }

  private onRequest(message: ConsumeMessage | null): void {
    if (message === null) {
      this.fail(new Error('the broker cancelled the consumer (the request queue was deleted?)'));
      return;
    }
    this.metrics.received++;
    if (message.fields.redelivered) this.metrics.redelivered++;
    const served = this.models!.current!;
    const decoded = decodeRequest(message, served.inputShape);
    if (!decoded.ok) {
      this.deadLetter(message, decoded);
      return;
    }
    const { version } = served;
    this.models!.acquire(version);
    this.batcher!.submit(version, decoded.rows, decoded.input).then(
      (result) => {
        this.models!.release(version);
        this.reply(message, decoded.requestId, decoded.replyTo, decoded.rows, version, served.outputShape, result);
      },
      (error: Error) => {
        this.models!.release(version);
        log.warn({ err: error }, 'prediction failed; the request goes back to the queue');
        this.settle(message, 'requeue');
      },
    );
  }

  private reply(message: ConsumeMessage, requestId: string, replyTo: string, rows: number, version: number, outputShape: number[], result: BatchResult): void {
    const output = result.outputs[0]!;
    const shape = [rows, ...outputShape.slice(1).map((d) => (d < 0 ? output.length / rows : d))];
    const headers = {
      [ON_DEMAND_HEADERS.status]: 'ok',
      [ON_DEMAND_HEADERS.modelVersion]: version,
      [ON_DEMAND_HEADERS.shape]: shape,
      [ON_DEMAND_HEADERS.batchSize]: result.batchSize,
      [ON_DEMAND_HEADERS.processor]: this.id,
      [ON_DEMAND_HEADERS.redelivered]: message.fields.redelivered,
    };
    this.publish(
      '',
      replyTo,
      float32Bytes(output),
      { correlationId: requestId, messageId: requestId, contentType: ON_DEMAND_CONTENT_TYPE, headers },
      (confirmed) => this.settle(message, confirmed ? 'replied' : 'requeue'),
    );
  }

  /**
   * A malformed request: an error reply when it names an id and a reply queue, then a copy with the
   * reason into the dead-letter queue; the request is acknowledged once that copy is confirmed.
   */
  private deadLetter(message: ConsumeMessage, refusal: RefusedOnDemandRequest): void {
    const { reason, message: text, requestId, replyTo } = refusal;
    if (requestId !== null && replyTo !== null) {
      const headers = {
        [ON_DEMAND_HEADERS.status]: 'error',
        [ON_DEMAND_HEADERS.reason]: reason,
        [ON_DEMAND_HEADERS.message]: text,
        [ON_DEMAND_HEADERS.processor]: this.id,
      };
      this.publish('', replyTo, Buffer.alloc(0), { correlationId: requestId, messageId: requestId, headers }, () => undefined);
    }
    const { properties } = message;
    // A body over the limit is not copied: the reason and the headers say enough.
    const body = reason === 'payload_too_large' ? Buffer.alloc(0) : message.content;
    const headers = { ...(properties.headers ?? {}), [ON_DEMAND_HEADERS.reason]: reason, [ON_DEMAND_HEADERS.message]: text };
    const copy = {
      messageId: typeof properties.messageId === 'string' ? properties.messageId : undefined,
      correlationId: typeof properties.correlationId === 'string' ? properties.correlationId : undefined,
      replyTo: typeof properties.replyTo === 'string' ? properties.replyTo : undefined,
      contentType: typeof properties.contentType === 'string' ? properties.contentType : undefined,
      persistent: true,
      headers,
    };
    log.info({ reason, requestId }, 'request dead-lettered');
    this.publish(this.queues!.deadLetterExchange, '', body, copy, (confirmed) => {
      if (confirmed) this.metrics.deadLetter(reason);
      this.settle(message, confirmed ? 'dead-lettered' : 'requeue');
    });
  }

  private publish(
    exchange: string,
    routingKey: string,
    body: Buffer,
    options: Parameters<ConfirmChannel['publish']>[3],
    done: (confirmed: boolean) => void,
  ): void {
    try {
      this.channel!.publish(exchange, routingKey, body, options, (error) => done(error === null || error === undefined));
    } catch (error) {
      // The channel is closing: the broker will deliver the request again.
      log.warn({ err: error }, 'publishing failed');
      done(false);
    }
  }

  /** Acknowledges (replied or dead-lettered) or hands the request back to the queue. */
  private settle(message: ConsumeMessage, outcome: 'replied' | 'dead-lettered' | 'requeue'): void {
    try {
      if (outcome === 'requeue') {
        this.channel!.nack(message, false, true);
        this.metrics.requeued++;
      } else {
        this.channel!.ack(message);
        if (outcome === 'replied') this.metrics.replied++;
      }
    } catch {
      // The channel closed: the broker delivers every unacknowledged request again.
    }
  }

  private every(ms: number, work: () => void): void {
    const timer = setInterval(work, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private lastLogged = '';

  private logMetrics(final = false): void {
    const snapshot = this.metrics.snapshot();
    const text = JSON.stringify(snapshot);
    if (!final && text === this.lastLogged) return;
    this.lastLogged = text;
    log.info({ processor: this.id, metrics: snapshot, final }, 'event processor metrics');
  }

  private fail(error: Error): void {
    if (this.stopping) return;
    this.stopping = true;
    this.failed(error);
  }
}
