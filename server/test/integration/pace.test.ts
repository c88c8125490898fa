/**
 * Pace steering end to end: a real coordinator plans report windows for 50 raw protocol devices
 * (at 25 uploads/s: two windows of 25), each device waits for its window as the SDK does
 * (`uploadDelayMs`), and every upload is acknowledged and folded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { io } from 'socket.io-client';
import { busyRefusalSchema, PROTOCOL_VERSION, uploadDelayMs, type RoundConfiguration, type UpdateResult } from '@flock/client-sdk/protocol';
import type { FlockConfig } from '../../src/config/config.js';
import type { RoundRecord } from '../../src/contract/index.js';
import { CLIENT_TOKEN, EXACT_AVERAGES, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { watchedClient } from '../support/watched-client.js';
import { makeDelta, newDeviceKey, ProtocolClient } from '../support/protocol-client.js';
import { writeTinyModel } from '../support/tiny-model.js';

let coordinator: TestCoordinator | null = null;
let clients: ProtocolClient[] = [];
let modelDir: string | null = null;

afterEach(async () => {
  clients.forEach((client) => client.disconnect());
  clients = [];
  await coordinator?.dispose();
  coordinator = null;
  if (modelDir) rmSync(modelDir, { recursive: true, force: true });
  modelDir = null;
});

async function startWithDevices(pace: FlockConfig['pace'], devices: number): Promise<TestCoordinator> {
  modelDir = mkdtempSync(join(tmpdir(), 'flock-pace-model-'));
  const started = await startTestCoordinator({ ...EXACT_AVERAGES, pace, initialModelPath: writeTinyModel(modelDir) });
  coordinator = started;
  clients = await Promise.all(Array.from({ length: devices }, () => ProtocolClient.connect(started.url)));
  await waitFor(
    () => started.api<{ eligible: number }>('/api/clients'),
    (r) => r.body.eligible === devices,
    10_000,
    'eligible devices',
  );
  return started;
}

/** Each device takes its configuration, waits for its report window as the SDK does, fetches the model and uploads. */
function participate(client: ProtocolClient, seed: number): Promise<{ configuration: RoundConfiguration; result: UpdateResult; sentAt: number }> {
  return (async () => {
    const configuration = await client.configurations.next(0, 30_000);
    const model = await client.fetchModel(configuration.modelVersion);
    await new Promise((wait) => setTimeout(wait, uploadDelayMs(configuration.reportWindow, Date.now(), Math.random())));
    const sentAt = Date.now();
    const result = await client.upload(configuration, model, makeDelta(model, seed), 10);
    return { configuration, result, sentAt };
  })();
}

async function startRound(started: TestCoordinator, devices: number): Promise<RoundRecord> {
  const { status, body } = await started.api<RoundRecord>('/api/rounds', {
    method: 'POST',
    body: JSON.stringify({ minClients: devices, targetClients: devices, overSelection: 1, deadlineSeconds: 60 }),
  });
  expect(status, JSON.stringify(body)).toBe(201);
  return body;
}

describe('pace steering', () => {
  it('gives 50 devices report windows of 25 at 25 uploads/s, and every paced upload is acknowledged and folded', async () => {
    const started = await startWithDevices({ uploadsPerSecond: 25, uploadBytesPerSecond: 1e12, windowMs: 1000 }, 50);
    const before = Date.now();
    const round = await startRound(started, 50);
    const outcomes = await Promise.all(clients.map((client, i) => participate(client, i)));

    const windows = new Map<number, number>();
    for (const { configuration, result, sentAt } of outcomes) {
      const window = configuration.reportWindow!;
      expect(window.notBefore).toBeGreaterThanOrEqual(before);
      expect(window.notAfter - window.notBefore).toBe(1000);
      expect(window.notAfter).toBeLessThanOrEqual(configuration.deadlineAt);
      expect(sentAt).toBeGreaterThanOrEqual(window.notBefore); // the device waited for its window
      expect(result).toEqual({ accepted: true });
      windows.set(window.notBefore, (windows.get(window.notBefore) ?? 0) + 1);
    }
    expect([...windows.values()]).toEqual([25, 25]);
    const [first, second] = [...windows.keys()].sort((a, b) => a - b);
    expect(second! - first!).toBe(1000);

    const ended = await started.roundEnded(round.id, 30_000);
    expect(ended.status).toBe('committed');
    expect(ended.metrics.accepted).toBe(50);

    const { body: metrics } = await started.api<string>('/metrics');
    const p99 = /^flock_event_loop_delay_seconds\{quantile="0.99"\} (\S+)$/m.exec(metrics);
    expect(p99, 'the event-loop delay p99 is exported').not.toBeNull();
    expect(Number(p99![1])).toBeGreaterThanOrEqual(0);
  });

  it('sends no report window when pace steering is off, and devices upload at once', async () => {
    const started = await startWithDevices(null, 3);
    const round = await startRound(started, 3);
    const outcomes = await Promise.all(clients.map((client, i) => participate(client, i)));
    for (const { configuration, result } of outcomes) {
      expect(configuration.reportWindow).toBeUndefined();
      expect(result).toEqual({ accepted: true });
    }
    expect((await started.roundEnded(round.id)).status).toBe('committed');
  });

  it('refuses arrivals with coordinator_busy and a time to come back while the event loop is slow (here: always)', async () => {
    modelDir = mkdtempSync(join(tmpdir(), 'flock-pace-model-'));
    // A threshold below any delay: every arrival is refused, whatever this machine's load.
    const started = await startTestCoordinator({ initialModelPath: writeTinyModel(modelDir), busy: { eventLoopDelayMs: -1, retryAfterMs: 1000 } });
    coordinator = started;
    const refusal = await new Promise<{ message: string; data: unknown }>((resolve, reject) => {
      const socket = io(started.url, {
        auth: { token: CLIENT_TOKEN, publicKey: newDeviceKey().publicKey, protocolVersion: PROTOCOL_VERSION },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      socket.on('connect', () => reject(new Error('an overloaded coordinator admitted a device')));
      socket.on('connect_error', (error: Error & { data?: unknown }) => {
        socket.close();
        resolve({ message: error.message, data: error.data });
      });
    });
    expect(refusal.message).toBe('coordinator_busy');
    const { retryAfterMs } = busyRefusalSchema.parse(refusal.data);
    expect(retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect(retryAfterMs).toBeLessThanOrEqual(2000);
    const { body: metrics } = await started.api<string>('/metrics');
    expect(metrics).toMatch(/^flock_connections_refused_total\{reason="coordinator_busy"\} 1$/m);
  });

  it('the SDK comes back after the retryAfterMs of a busy refusal (not its credential retry delay) and connects once the coordinator is not busy', async () => {
    modelDir = mkdtempSync(join(tmpdir(), 'flock-pace-model-'));
    const started = await startTestCoordinator({ initialModelPath: writeTinyModel(modelDir), busy: { eventLoopDelayMs: -1, retryAfterMs: 200 } });
    coordinator = started;
    const { client, errors, welcomed } = watchedClient(
      {
        serverUrl: started.url,
        clientToken: CLIENT_TOKEN,
        credentialRetryMs: 600_000, // far longer than the test: only retryAfterMs can bring it back in time
      },
      16,
    );
    try {
      await client.start();
      await waitFor(
        () => errors.length,
        (count) => count > 0,
        5_000,
        'the busy refusal',
      );
      expect(errors[0]?.code).toBe('coordinator_busy');
      started.config.busy = null; // the load is gone
      expect(await welcomed).toMatchObject({ clientId: client.clientId });
    } finally {
      await client.dispose();
    }
  });
});
