import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { io } from 'socket.io-client';
import { concatWeights, FederatedClient, ManualCondition, type FlockSocket } from '@flock/client-sdk';
import { asFloat32, ClientEvent, encodeUploadBody, encodeWeights, uploadUrl, type RoundConfiguration, type UpdateUpload } from '@flock/client-sdk/protocol';
import type { FlockConfig } from '../../src/config/config.js';
import type { RoundDetails } from '../../src/contract/index.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';
import { CLIENT_TOKEN, EXACT_AVERAGES, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { metrics, metricValue } from '../support/metrics.js';
import { makeDelta, nextLoopbackAddress, ProtocolClient } from '../support/protocol-client.js';
import { mnistSlice } from '../support/sdk-device.js';
import { readMnist } from '../../src/datasets/mnist.js';
import { UploadIngress } from '../../src/uploads/upload-ingress.service.js';

/*
 * Uploads over HTTP (docs/ARCHITECTURE.md, "Uploads over HTTP"): the real coordinator's upload
 * listener (a worker thread), real SDK devices and raw protocol clients. One slot, so that every
 * upload reuses the same shared buffer: a strategy that keeps updates must get copies, and a
 * FedAvg round's uploads all land in the one region of its receive area, folded there.
 */

const MODEL_VALUES = 199_210;
let coordinator: TestCoordinator;
let clients: ProtocolClient[] = [];

const listener = (publicUrl: string | null = null): NonNullable<FlockConfig['uploads']> => ({
  port: 0,
  host: '127.0.0.1',
  portChosen: false,
  publicUrl,
  slots: 1,
  requestTimeoutMs: 10_000,
  minBytes: 64 * 1024,
});

beforeAll(async () => {
  coordinator = await startTestCoordinator({ maxUploadBytes: 4 * MODEL_VALUES + 4096, ...EXACT_AVERAGES, uploads: listener() });
});
afterEach(async () => {
  clients.forEach((c) => c.disconnect());
  clients = [];
  await coordinator.devicesLeft();
});
afterAll(async () => {
  await coordinator?.dispose();
});

async function devices(count: number): Promise<ProtocolClient[]> {
  const connected = await Promise.all(Array.from({ length: count }, () => ProtocolClient.connect(coordinator.url)));
  clients.push(...connected);
  await coordinator.eligible(count);
  return connected;
}

async function weightsOf(version: number): Promise<Float32Array> {
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${version}/weights.bin`, {
    headers: { Authorization: `Bearer ${coordinator.config.operatorToken}` },
  });
  return asFloat32(new Uint8Array(await response.arrayBuffer()));
}

async function openRound(
  count: number,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; configurations: RoundConfiguration[]; connected: ProtocolClient[] }> {
  const connected = await devices(count);
  const id = await coordinator.startRound({ minClients: count, targetClients: count, overSelection: 1, deadlineSeconds: 30, ...extra });
  const configurations = await Promise.all(connected.map((device) => device.configurations.next()));
  return { id, configurations, connected };
}

const requests = async (result: string, target = coordinator): Promise<number> => metricValue(await metrics(target), 'flock_upload_requests_total', { result });
/** HTTP uploads the main thread read from a round's receive area (the aggregator's memory, folded in place). */
const inArea = (): number => coordinator.app.get(UploadIngress).receivedInArea;

describe('uploads over HTTP', () => {
  it('plans name the listener with a ticket per device, and the round commits the exact weighted average of HTTP uploads, folded where the listener wrote them', async () => {
    const { id, configurations, connected } = await openRound(3);
    const received = await requests('received');
    const foldedInArea = inArea();
    const tickets = new Set(configurations.map((c) => c.upload?.ticket));
    expect(tickets.size).toBe(3);
    expect(typeof configurations[0]!.upload?.port).toBe('number');
    const model = await connected[0]!.fetchModel(configurations[0]!.modelVersion);
    const base = asFloat32(model.weights);
    const examples = [100, 300, 600];
    const deltas = connected.map((_, k) => makeDelta(model, k + 1));
    const results = await Promise.all(connected.map((device, k) => device.uploadOverHttp(configurations[k]!, model, deltas[k]!, examples[k]!)));
    expect(results).toEqual([{ accepted: true }, { accepted: true }, { accepted: true }]);
    const ended = await coordinator.roundEnded(id);
    expect(ended.status).toBe('committed');
    expect(await requests('received')).toBe(received + 3);
    expect(inArea()).toBe(foldedInArea + 3);
    const committed = await weightsOf(ended.committedVersion!);
    const flat = deltas.map((d) => new Float32Array(concatWeights(d)));
    let worst = 0;
    for (let i = 0; i < committed.length; i++) {
      const expected = Math.fround(base[i]! + (100 * flat[0]![i]! + 300 * flat[1]![i]! + 600 * flat[2]![i]!) / 1000);
      worst = Math.max(worst, Math.abs(committed[i]! - expected));
    }
    expect(worst).toBeLessThanOrEqual(1e-7);
  });

  it('a strategy that keeps every update (median) gets copies of the listener’s reused buffers', async () => {
    const { id, configurations, connected } = await openRound(3, { strategy: 'median' });
    const foldedInArea = inArea();
    const model = await connected[0]!.fetchModel(configurations[0]!.modelVersion);
    const base = asFloat32(model.weights);
    const tensors = connected.map((_, k) => makeDelta(model, k + 1));
    const deltas = tensors.map((delta) => new Float32Array(concatWeights(delta)));
    // One at a time: each upload's bytes land in a slot the previous one used.
    for (const [k, device] of connected.entries()) expect(await device.uploadOverHttp(configurations[k]!, model, tensors[k]!, 100)).toEqual({ accepted: true });
    const ended = await coordinator.roundEnded(id);
    expect(ended.status).toBe('committed');
    const committed = await weightsOf(ended.committedVersion!);
    let worst = 0;
    for (let i = 0; i < committed.length; i++) {
      const sorted = [deltas[0]![i]!, deltas[1]![i]!, deltas[2]![i]!].sort((a, b) => a - b);
      worst = Math.max(worst, Math.abs(committed[i]! - Math.fround(base[i]! + sorted[1]!)));
    }
    expect(worst).toBeLessThanOrEqual(1e-7);
    expect(inArea()).toBe(foldedInArea); // a strategy that keeps updates offers no receive area
  });

  it('refuses as late an upload whose round ended while its body arrived, whatever buffer the listener had chosen for it', async () => {
    const { id, configurations, connected } = await openRound(2);
    const foldedInArea = inArea();
    const model = await connected[0]!.fetchModel(configurations[0]!.modelVersion);
    const body = encodeUploadBody({
      roundId: id,
      modelVersion: configurations[0]!.modelVersion,
      numExamples: 10,
      trainLoss: 0.1,
      delta: encodeWeights(
        makeDelta(model, 1),
        model.weightSpecs.map((s) => s.shape),
      ),
    });
    const upload = httpRequest(uploadUrl(configurations[0]!.upload!, coordinator.url), {
      method: 'PUT',
      agent: false,
      headers: { authorization: `Bearer ${configurations[0]!.upload!.ticket}`, 'content-length': body.byteLength },
    });
    const answered = once(upload, 'response') as Promise<[IncomingMessage]>;
    // Half the body: with its meta read, the listener has (most likely) put the rest in the round's area.
    upload.write(body.subarray(0, body.byteLength >> 1));
    await sleep(200);
    expect((await coordinator.api(`/api/rounds/${id}/cancel`, { method: 'POST' })).status).toBe(200);
    expect((await coordinator.roundEnded(id)).status).toBe('aborted');
    upload.end(body.subarray(body.byteLength >> 1));
    const [response] = await answered;
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    expect(response.statusCode).toBe(422);
    expect(JSON.parse(Buffer.concat(chunks).toString())).toMatchObject({ accepted: false, reason: 'round_closed' });
    expect(inArea()).toBe(foldedInArea);
  });

  it('refuses what a stranger sends with a counted reason, and the round still takes the real upload', async () => {
    const { id, configurations, connected } = await openRound(2);
    const [configuration, otherConfiguration] = configurations;
    const [device, other] = connected;
    const model = await device!.fetchModel(configuration!.modelVersion);
    const body = encodeUploadBody({
      roundId: configuration!.roundId,
      modelVersion: configuration!.modelVersion,
      numExamples: 10,
      trainLoss: 0.1,
      delta: encodeWeights(
        makeDelta(model, 1),
        model.weightSpecs.map((s) => s.shape),
      ),
    });
    const url = uploadUrl(configuration!.upload!, coordinator.url);
    const before = { unauthorized: await requests('unauthorized'), tooLarge: await requests('too_large'), malformed: await requests('malformed') };

    // No ticket, a forged one (claims changed), the client token as a ticket.
    const [payload, mac] = configuration!.upload!.ticket.split('.');
    const forgedClaims = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), c: 'someone-else' })).toString('base64url');
    for (const authorization of [undefined, `Bearer ${forgedClaims}.${mac}`, `Bearer ${CLIENT_TOKEN}`]) {
      const response = await noKeepAliveFetch(url, { method: 'PUT', body, headers: authorization ? { authorization } : {} });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ accepted: false, reason: 'not_selected' });
    }
    // Larger than the upload limit: refused from its Content-Length, before a byte of it is read.
    const huge = await device!.putUpload(configuration!, new Uint8Array(coordinator.config.maxUploadBytes + 300 * 1024));
    expect(huge.status).toBe(413);
    // A meta length past the body.
    const broken = new Uint8Array(64);
    new DataView(broken.buffer).setUint32(0, 1000, true);
    expect((await device!.putUpload(configuration!, broken)).status).toBe(400);
    // Meta that is not the upload's schema: the round engine's own refusal.
    const junk = encodeUploadBody({ roundId: configuration!.roundId, delta: { shapes: [], data: new Uint8Array(8) } } as unknown as UpdateUpload);
    const refused = await device!.putUpload(configuration!, junk);
    expect(refused.status).toBe(422);
    expect(await refused.json()).toMatchObject({ accepted: false, reason: 'malformed' });
    // A body cut short: the device goes away mid-upload.
    await new Promise<void>((done) => {
      const { hostname, port } = new URL(url);
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          `PUT /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${configuration!.upload!.ticket}\r\nContent-Length: ${body.byteLength}\r\n\r\n`,
        );
        socket.write(body.subarray(0, 1000), () => socket.destroy());
      });
      socket.on('close', () => done());
    });
    await waitFor(
      () => requests('incomplete'),
      (n) => n >= 1,
      5000,
      'the cut body to be counted',
    );
    // Another path, and a browser's preflight.
    expect((await noKeepAliveFetch(url.replace('/v1/uploads', '/other'), { method: 'PUT', body })).status).toBe(404);
    const preflight = await noKeepAliveFetch(url, { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');

    expect(await requests('unauthorized')).toBe(before.unauthorized + 3);
    expect(await requests('too_large')).toBe(before.tooLarge + 1);
    expect(await requests('malformed')).toBe(before.malformed + 1);
    // The device's real upload is still taken, once: its ticket is for one upload.
    expect(await (await device!.putUpload(configuration!, body)).json()).toEqual({ accepted: true });
    expect(await (await device!.putUpload(configuration!, body)).json()).toMatchObject({ accepted: false, reason: 'duplicate_upload' });
    // A ticket is for its own round's upload only (here: a body naming another round).
    const elsewhere = encodeUploadBody({
      roundId: 'another-round',
      modelVersion: 1,
      numExamples: 1,
      trainLoss: 0,
      delta: { shapes: [], data: new Uint8Array(0) },
    });
    expect(await (await other!.putUpload(otherConfiguration!, elsewhere)).json()).toMatchObject({ accepted: false, reason: 'not_selected' });
    expect(await other!.uploadOverHttp(otherConfiguration!, model, makeDelta(model, 2), 10)).toEqual({ accepted: true });
    expect((await coordinator.roundEnded(id)).status).toBe('committed');
  });

  it('speaks strict HTTP/1.1: refuses chunked bodies, malformed and oversized heads; answers Expect: 100-continue', async () => {
    const { id, configurations, connected } = await openRound(1);
    const [configuration] = configurations;
    const model = await connected[0]!.fetchModel(configuration!.modelVersion);
    const body = encodeUploadBody(updateBody(configuration!, model));
    const { hostname, port } = new URL(uploadUrl(configuration!.upload!, coordinator.url));
    const ticket = `Authorization: Bearer ${configuration!.upload!.ticket}\r\n`;
    const before = await requests('malformed');

    const chunked = await exchange(
      hostname,
      Number(port),
      `PUT /v1/uploads HTTP/1.1\r\nHost: x\r\n${ticket}Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n`,
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 411 /);
    expect(await requests('malformed')).toBe(before + 1);
    expect(await exchange(hostname, Number(port), `PUT /v1/uploads HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await exchange(hostname, Number(port), `PUT /v1/uploads HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
    expect(await exchange(hostname, Number(port), `PUT /v1/uploads HTTP/1.1\r\n${ticket}Content-Length: 0x20\r\n\r\n`)).toMatch(/^HTTP\/1\.1 411 /);

    // curl's way with a large body: the head alone, the body only after "100 Continue".
    const answer = await exchange(
      hostname,
      Number(port),
      `PUT /v1/uploads HTTP/1.1\r\nHost: x\r\n${ticket}Content-Length: ${body.byteLength}\r\nExpect: 100-continue\r\n\r\n`,
      (socket, received) => {
        if (received.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !socket.writableEnded) socket.write(body);
      },
    );
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    expect(answer).toMatch(/connection: close\r\n/);
    expect(JSON.parse(answer.slice(answer.lastIndexOf('\r\n\r\n') + 4))).toEqual({ accepted: true });
    expect((await coordinator.roundEnded(id)).status).toBe('committed');
  });

  it('cuts a connection whose head or body stalls, and counts the stalled body', async () => {
    const impatient = await startTestCoordinator({ maxUploadBytes: 4 * MODEL_VALUES + 4096, uploads: { ...listener(), requestTimeoutMs: 400 } });
    const device = await ProtocolClient.connect(impatient.url);
    try {
      await impatient.eligible(1);
      await impatient.startRound({ minClients: 1, targetClients: 1, overSelection: 1, deadlineSeconds: 30 });
      const configuration = await device.configurations.next();
      const { hostname, port } = new URL(uploadUrl(configuration.upload!, impatient.url));
      const started = performance.now();
      // Half a head, then nothing: closed without an answer.
      expect(await exchange(hostname, Number(port), 'PUT /v1/uploads HTTP/1.1\r\nHost: x\r\n')).toBe('');
      expect(performance.now() - started).toBeGreaterThanOrEqual(350);
      // A whole head and part of the body, then nothing: closed, counted as incomplete.
      const head = `PUT /v1/uploads HTTP/1.1\r\nAuthorization: Bearer ${configuration.upload!.ticket}\r\nContent-Length: 100000\r\n\r\n`;
      const metaThenSome = '\x02\x00\x00\x00{}' + 'x'.repeat(1000); // a meta length, a meta, the first delta bytes
      expect(await exchange(hostname, Number(port), head + metaThenSome)).toBe('');
      await waitFor(
        () => requests('incomplete', impatient),
        (n) => n >= 1,
        5000,
        'the stalled body to be counted',
      );
    } finally {
      device.disconnect();
      await impatient.dispose();
    }
  });

  it('SDK devices upload over HTTP; with the listener unreachable they upload over the socket', async () => {
    const mnist = await readMnist('train', { start: 0, count: 120 });
    const run = async (target: TestCoordinator): Promise<{ round: RoundDetails; overSocket: number; received: number }> => {
      let overSocket = 0;
      const sdk = [0, 1].map(
        (k) =>
          new FederatedClient({
            serverUrl: target.url,
            clientToken: CLIENT_TOKEN,
            dataSource: mnistSlice(mnist, k, 60),
            conditions: [new ManualCondition('idle', 'yes'), new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')],
            socketOptions: { transports: ['websocket'] },
            socketFactory: (url, options) => {
              const socket = io(url, { ...options, localAddress: nextLoopbackAddress() } as typeof options) as FlockSocket;
              socket.onAnyOutgoing((event: string) => void (event === ClientEvent.update && overSocket++));
              return socket;
            },
            fetch, // Node's own: any WHATWG fetch fits the option
          }),
      );
      try {
        await Promise.all(sdk.map((client) => client.start()));
        await target.eligible(2);
        const received = await requests('received', target);
        const id = await target.startRound({ minClients: 2, targetClients: 2, overSelection: 1, deadlineSeconds: 60, epochs: 1, batchSize: 20 });
        const round = await target.roundEnded(id, 60_000);
        return { round, overSocket, received: (await requests('received', target)) - received };
      } finally {
        await Promise.all(sdk.map((client) => client.dispose()));
        await target.devicesLeft(10_000);
      }
    };
    const direct = await run(coordinator);
    expect(direct.round.status).toBe('committed');
    expect(direct).toMatchObject({ overSocket: 0, received: 2 });
    expect(await requests('received', coordinator)).toBeGreaterThan(0);

    // Published at a URL nothing listens on: the SDK falls back to the socket.
    const unreachable = await startTestCoordinator({ ...EXACT_AVERAGES, uploads: listener('http://127.0.0.1:9/v1/uploads') });
    try {
      const fallback = await run(unreachable);
      expect(fallback.round.status).toBe('committed');
      expect(fallback.overSocket).toBe(2);
    } finally {
      await unreachable.dispose();
    }
  }, 120_000);
});

/** An upload's meta and a delta for `configuration`'s round. */
function updateBody(configuration: RoundConfiguration, model: Awaited<ReturnType<ProtocolClient['fetchModel']>>): UpdateUpload {
  return {
    roundId: configuration.roundId,
    modelVersion: configuration.modelVersion,
    numExamples: 10,
    trainLoss: 0.1,
    delta: encodeWeights(
      makeDelta(model, 1),
      model.weightSpecs.map((s) => s.shape),
    ),
  };
}

/** Writes `request` on a fresh connection and returns everything the listener sent until it closed; `onData` may write more as answers come. */
function exchange(host: string, port: number, request: string, onData?: (socket: Socket, received: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = connect(port, host, () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      onData?.(socket, received);
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
  });
}
