/**
 * Model-on-demand end to end: a real coordinator (in this process) announcing versions on a real
 * RabbitMQ, real event processor processes (`node server/dist/cli/main.js processor`, so
 * `pnpm build` first), and the OnDemandClient. Every test has queues of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ChannelModel, GetMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ON_DEMAND_CONTENT_TYPE, ON_DEMAND_HEADERS } from '../../src/contract/index.js';
import { loadLayersModelFromParts, readModelFromDisk } from '../../src/models/tfjs-format.js';
import { OnDemandClient, OnDemandRequestError, type OnDemandReply } from '../../src/on-demand/on-demand-client.js';
import { float32Bytes } from '../../src/on-demand/request-codec.js';
import { declareTopology, queuesOf } from '../../src/on-demand/topology.js';
import { FlockApiClient } from '../../src/cli/api-client.js';
import { OPERATOR_TOKEN, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { writeTinyModel } from '../support/tiny-model.js';
import {
  AMQP_URL,
  brokerConnection,
  deleteTopology,
  kill9,
  lastMetrics,
  startProcessor,
  tinyInput,
  uniqueName,
  type ProcessorChild,
} from './on-demand-helpers.js';

const versionsExchange = uniqueName('versions');
const modelDir = mkdtempSync(join(tmpdir(), 'flock-on-demand-model-'));
const modelPath = writeTinyModel(modelDir);
let coordinator: TestCoordinator;
let broker: ChannelModel;
const queues: string[] = [];
const processors: ProcessorChild[] = [];
const clients: OnDemandClient[] = [];

beforeAll(async () => {
  broker = await brokerConnection();
  coordinator = await startTestCoordinator({ initialModelPath: modelPath, onDemand: { amqpUrl: AMQP_URL, versionsExchange } });
});

afterAll(async () => {
  await Promise.all(processors.map((p) => kill9(p)));
  await Promise.all(clients.map((c) => c.close()));
  for (const queue of queues) await deleteTopology(broker, queue).catch(() => undefined);
  const channel = await broker.createChannel();
  await channel.deleteExchange(versionsExchange).catch(() => undefined);
  await broker.close();
  await coordinator?.dispose();
  rmSync(modelDir, { recursive: true, force: true });
});

function newQueue(what: string): string {
  const queue = uniqueName(what);
  queues.push(queue);
  return queue;
}

async function processor(queue: string, args: string[] = []): Promise<ProcessorChild> {
  const started = await startProcessor(coordinator.url, queue, ['--versions-exchange', versionsExchange, ...args]);
  processors.push(started);
  return started;
}

async function client(queue: string, timeoutMs = 60_000): Promise<OnDemandClient> {
  const connected = await OnDemandClient.connect(AMQP_URL, { queue, timeoutMs });
  clients.push(connected);
  return connected;
}

/** Sends `count` requests with at most `window` in flight; the replies by request id, each counted as it resolves. */
async function load(
  on: OnDemandClient,
  count: number,
  window: number,
  onReply: (reply: OnDemandReply, index: number) => void = () => undefined,
): Promise<{ replies: Map<string, OnDemandReply>; resolutions: Map<string, number>; errors: Error[] }> {
  const replies = new Map<string, OnDemandReply>();
  const resolutions = new Map<string, number>();
  const errors: Error[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const requestId = `load-${index}`;
      try {
        const reply = await on.request(tinyInput(index), [1, 16], { requestId });
        resolutions.set(requestId, (resolutions.get(requestId) ?? 0) + 1);
        replies.set(requestId, reply);
        onReply(reply, index);
      } catch (error) {
        errors.push(error as Error);
      }
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return { replies, resolutions, errors };
}

// Processes start slowly on a loaded 2-core machine: each of these starts one or two processors (TensorFlow.js in a thread).
describe('model-on-demand over RabbitMQ', { timeout: 180_000 }, () => {
  it('answers a request with the prediction of the current version, computed in a batch', async () => {
    const queue = newQueue('roundtrip');
    await processor(queue);
    const on = await client(queue);
    const model = await loadLayersModelFromParts(await readModelFromDisk(modelPath));
    const input = tinyInput(7, 3);
    const expected = (model.predict(tf.tensor(input, [3, 16])) as tf.Tensor).dataSync();
    model.dispose();

    const reply = await on.request(input, [3, 16]);
    expect(reply.modelVersion).toBe(1);
    expect(reply.shape).toEqual([3, 10]);
    expect(reply.redelivered).toBe(false);
    expect(reply.batchSize).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < expected.length; i++) expect(reply.output[i]).toBeCloseTo(expected[i]!, 5);

    // Many at once: batched (rows per batch above 1), each answered with its own rows.
    const { replies, errors } = await load(on, 200, 64);
    expect(errors).toEqual([]);
    expect(replies.size).toBe(200);
    expect(Math.max(...[...replies.values()].map((r) => r.batchSize))).toBeGreaterThan(1);
    expect(on.stats.duplicates).toBe(0);
  });

  it('moves malformed requests to the dead-letter queue with their reason, and tells the requester', async () => {
    const queue = newQueue('malformed');
    const started = await processor(queue, ['--metrics-port', '0']);
    const on = await client(queue);
    // Wrong width for the model: the client is told why.
    const refused = await on.request(new Float32Array(15), [1, 15]).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OnDemandRequestError);
    expect((refused as OnDemandRequestError).reason).toBe('shape_mismatch');

    // Raw messages a careless producer might send: no id, a NaN, a body that does not fit its shape, no shape.
    const channel = await broker.createConfirmChannel();
    const names = await declareTopology(channel, queue);
    const send = (body: Buffer, properties: Record<string, unknown>): void => {
      channel.sendToQueue(queue, body, { contentType: ON_DEMAND_CONTENT_TYPE, replyTo: 'nobody', ...properties });
    };
    send(float32Bytes(tinyInput(1)), { headers: { [ON_DEMAND_HEADERS.shape]: [1, 16] } });
    send(float32Bytes(new Float32Array(16).fill(Number.NaN)), { messageId: 'nan-1', headers: { [ON_DEMAND_HEADERS.shape]: [1, 16] } });
    send(Buffer.alloc(10), { messageId: 'short-1', headers: { [ON_DEMAND_HEADERS.shape]: [1, 16] } });
    send(float32Bytes(tinyInput(2)), { messageId: 'noshape-1', headers: {} });
    await channel.waitForConfirms();

    const dead: GetMessage[] = [];
    await waitFor(
      async () => {
        const message = await channel.get(names.deadLetters, { noAck: true });
        if (message) dead.push(message);
        return dead.length;
      },
      (n) => n >= 5,
      20_000,
      'five dead letters',
    );
    const reasons = dead.map((m) => String(m.properties.headers?.[ON_DEMAND_HEADERS.reason])).sort();
    expect(reasons).toEqual(['bad_shape', 'missing_request_id', 'non_finite', 'shape_mismatch', 'size_mismatch']);
    for (const message of dead) expect(String(message.properties.headers?.[ON_DEMAND_HEADERS.message]).length).toBeGreaterThan(0);
    // Nothing left behind in the request queue, and the processor counted them.
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
    await waitFor(
      () => lastMetrics(started),
      (m) => m?.deadLettered === 5,
      10_000,
      'the processor to log five dead letters',
    );
    // The same counts on its Prometheus endpoint, behind the operator token.
    const metricsUrl = /metrics: (http:\/\/\S+)/.exec(started.output())?.[1];
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await fetch(metricsUrl!)).status).toBe(401);
    const scraped = await fetch(metricsUrl!, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
    expect(scraped.status).toBe(200);
    const text = await scraped.text();
    for (const reason of ['bad_shape', 'missing_request_id', 'non_finite', 'shape_mismatch', 'size_mismatch']) {
      expect(text).toContain(`flock_processor_dead_lettered_total{reason="${reason}"} 1`);
    }
    expect(text).toContain('flock_processor_requests_received_total 5');
    expect(text).toContain('flock_processor_model_version 1');
    expect(text).toContain('flock_processor_in_flight 0');
    await channel.close();
  });

  it('spreads the load over the processors that share a queue', async () => {
    const queue = newQueue('shared');
    await processor(queue, ['--prefetch', '8', '--max-batch', '8']);
    await processor(queue, ['--prefetch', '8', '--max-batch', '8']);
    const on = await client(queue);
    const { replies, errors } = await load(on, 200, 32);
    expect(errors).toEqual([]);
    const byProcessor = new Map<string, number>();
    for (const reply of replies.values()) byProcessor.set(reply.processor, (byProcessor.get(reply.processor) ?? 0) + 1);
    expect(byProcessor.size).toBe(2);
    for (const count of byProcessor.values()) expect(count).toBeGreaterThan(0);
  });

  it('loses no request and answers none twice when a processor is killed -9 mid-batch', async () => {
    const queue = newQueue('kill');
    const victim = await processor(queue, ['--prefetch', '64', '--max-batch', '32', '--max-delay-ms', '5']);
    await processor(queue, ['--prefetch', '64', '--max-batch', '32', '--max-delay-ms', '5']);
    const on = await client(queue);
    const victimId = `${victim.child.pid}`;
    let answeredByVictim = 0;
    const killed: Promise<void>[] = [];
    const total = 1000;
    const { replies, resolutions, errors } = await load(on, total, 64, (reply) => {
      if (reply.processor.endsWith(`:${victimId}`)) answeredByVictim++;
      // Killed while it holds a full prefetch window of unacknowledged requests.
      if (answeredByVictim === 100 && killed.length === 0) killed.push(kill9(victim));
    });
    expect(killed.length, 'the victim answered 100 requests before the end').toBe(1);
    await Promise.all(killed);
    expect(errors).toEqual([]);
    // Every request answered, each resolved exactly once at the caller.
    expect(replies.size).toBe(total);
    expect([...resolutions.values()].every((n) => n === 1)).toBe(true);
    expect(on.stats.answered).toBe(total);
    // The victim died holding requests: the broker delivered them again, and the survivor answered them.
    const redelivered = [...replies.values()].filter((r) => r.redelivered);
    expect(redelivered.length).toBeGreaterThan(0);
    expect(redelivered.every((r) => !r.processor.endsWith(`:${victimId}`))).toBe(true);
    const channel = await broker.createChannel();
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
    await channel.close();
  });

  it('resolves a request once when its reply arrives twice, and counts the duplicate', async () => {
    const queue = newQueue('duplicates');
    const on = await client(queue);
    const pending = on.request(tinyInput(3), [1, 16], { requestId: 'twice-1' });
    // Play the processor that answered, died before its ack, and whose request was answered again.
    const channel = await broker.createConfirmChannel();
    const request = await waitFor(
      () => channel.get(queue, { noAck: true }),
      (m) => m !== false,
      10_000,
      'the request in the queue',
    );
    if (request === false) throw new Error('unreachable');
    const replyTo = request.properties.replyTo as string;
    for (const version of [1, 2]) {
      channel.sendToQueue(replyTo, float32Bytes(new Float32Array(10).fill(0.1)), {
        correlationId: 'twice-1',
        headers: {
          [ON_DEMAND_HEADERS.status]: 'ok',
          [ON_DEMAND_HEADERS.modelVersion]: version,
          [ON_DEMAND_HEADERS.shape]: [1, 10],
          [ON_DEMAND_HEADERS.batchSize]: 1,
          [ON_DEMAND_HEADERS.processor]: 'test',
          [ON_DEMAND_HEADERS.redelivered]: version === 2,
        },
      });
    }
    await channel.waitForConfirms();
    const reply = await pending;
    expect(reply.modelVersion).toBe(1);
    await waitFor(
      () => on.stats.duplicates,
      (n) => n === 1,
      5_000,
      'the duplicate to be counted',
    );
    expect(on.stats.answered).toBe(1);
    await channel.close();
  });

  it('follows a new version without a restart; a pinned processor keeps its version', async () => {
    const following = newQueue('following');
    const pinned = newQueue('pinned');
    // Polling far apart: the announcement on the exchange is what makes it switch.
    const follower = await processor(following, ['--follow', '--poll-ms', '600000']);
    await processor(pinned, ['--version', '1']);
    const onFollowing = await client(following);
    const onPinned = await client(pinned);
    const before = await onFollowing.request(tinyInput(1), [1, 16]);
    expect(before.modelVersion).toBe(1);

    // A new version registered by the operator (a round's commit or a rollback announce alike).
    const api = new FlockApiClient({ baseUrl: coordinator.url, token: OPERATOR_TOKEN });
    const next = await readModelFromDisk(writeTinyModel(join(modelDir, 'v2'), 2));
    const modelJson = { format: 'layers-model', modelTopology: next.topology, weightsManifest: [{ paths: ['weights.bin'], weights: next.weightSpecs }] };
    expect((await api.registerModel({ modelJson, weights: next.weights })).version).toBe(2);
    await waitFor(
      () => onFollowing.request(tinyInput(2), [1, 16]),
      (reply) => reply.modelVersion === 2,
      20_000,
      'the following processor to answer with version 2',
    );
    expect((await onPinned.request(tinyInput(3), [1, 16])).modelVersion).toBe(1);
    await waitFor(
      () => lastMetrics(follower),
      (m) => m?.versionSwitches === 1 && m.currentVersion === 2,
      10_000,
      'the follower to count its switch',
    );
  });
});

// queuesOf is part of the topology every test above relies on; keep its naming checked.
describe('on-demand topology names', () => {
  it('names the dead-letter exchange and queue after the request queue', () => {
    expect(queuesOf('q')).toEqual({ requests: 'q', deadLetterExchange: 'q.dlx', deadLetters: 'q.dead' });
  });
});
