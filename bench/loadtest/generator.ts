/**
 * A load-test device generator: one child process holding many raw protocol devices (each its own
 * key, socket and loopback source address), which take part in rounds as the SDK would: wait for
 * the report window of their `round:configure`, then upload one delta and count the
 * acknowledgement. Started by main.ts; talks to it over IPC (messages.ts).
 */
import { request } from 'node:http';
import {
  ClientEvent,
  ServerEvent,
  encodeUploadBody,
  encodeWeights,
  uploadUrl,
  shapeSize,
  uploadDelayMs,
  type ModelFetchResult,
  type RoundConfiguration,
  type UpdateResult,
  type UpdateUpload,
} from '../../client-sdk/src/protocol/index.js';
import { connectDevice, type RawSocket } from '../lib/coordinator-process.js';
import type { DriverMessage, GeneratorMessage, RoundStats } from './messages.js';

/** Acknowledgements still missing this long after the deadline count as lost. */
const ACK_GRACE_AFTER_DEADLINE_MS = 30_000;

const devices: RawSocket[] = [];
let closing = false;
let disconnects = 0;
let stats = emptyStats();
let pending = 0;
/** The encoded delta every device of this process sends for a model version (fetched once over one socket). */
const deltas = new Map<number, Promise<ReturnType<typeof encodeWeights>>>();

function emptyStats(): RoundStats {
  return { configured: 0, paced: 0, uploadsSent: 0, accepted: 0, rejected: 0, lostAcks: 0, firstSendAt: null, lastAckAt: null, disconnects: 0, rejections: {} };
}

function send(message: GeneratorMessage): void {
  process.send!(message);
}

/** 127.(10 + generator).b.c: distinct per device (up to 62,500 per generator), so per-address caps do not bite. */
function sourceAddress(generator: number, index: number): string {
  return `127.${10 + generator}.${Math.floor(index / 250)}.${(index % 250) + 1}`;
}

function deltaFor(socket: RawSocket, version: number): Promise<ReturnType<typeof encodeWeights>> {
  let delta = deltas.get(version);
  if (!delta) {
    delta = (async () => {
      const fetched = (await socket.timeout(60_000).emitWithAck(ClientEvent.fetchModel, { version })) as ModelFetchResult;
      if (!fetched.ok) throw new Error(`model:fetch failed: ${fetched.error}`);
      const shapes = fetched.model.weightSpecs.map((spec) => spec.shape);
      // A small, finite, deterministic delta: within every bound, so each upload is accepted.
      const tensors = shapes.map((shape, t) => Float32Array.from({ length: shapeSize(shape) }, (_, i) => 1e-4 * Math.sin(i + t)));
      return encodeWeights(tensors, shapes);
    })();
    delta.catch(() => deltas.delete(version));
    deltas.set(version, delta);
  }
  return delta;
}

/** One device: its socket, and the coordinator URL and source address it connected with (its HTTP uploads use them too). */
interface Device {
  socket: RawSocket;
  url: string;
  localAddress: string;
}

/**
 * An upload over HTTP to the plan's listener, from the device's own address, on a connection of its
 * own, as the SDK's; null when the listener is at capacity (503, or the connection closed at once),
 * where the SDK uploads over the socket.
 */
function putUpload(device: Device, configuration: RoundConfiguration, upload: UpdateUpload, timeoutMs: number): Promise<UpdateResult | null> {
  const { ticket } = configuration.upload!;
  const body = encodeUploadBody(upload);
  return new Promise((resolve, reject) => {
    const put = request(
      uploadUrl(configuration.upload!, device.url),
      {
        method: 'PUT',
        agent: false,
        localAddress: device.localAddress,
        timeout: timeoutMs,
        headers: { authorization: `Bearer ${ticket}`, 'content-length': body.byteLength },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          if (response.statusCode === 503) return resolve(null);
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as UpdateResult);
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
        response.on('error', reject);
      },
    );
    put.on('timeout', () => put.destroy(new Error('upload timed out')));
    put.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve(null) : reject(error)));
    put.end(body);
  });
}

async function takePart(device: Device, configuration: RoundConfiguration): Promise<void> {
  const { socket } = device;
  stats.configured++;
  if (configuration.reportWindow) stats.paced++;
  const delta = await deltaFor(socket, configuration.modelVersion);
  const waitMs = uploadDelayMs(configuration.reportWindow, Date.now(), Math.random());
  if (waitMs > 0) await new Promise((wait) => setTimeout(wait, waitMs));
  if (!socket.connected) return;
  const upload = { roundId: configuration.roundId, modelVersion: configuration.modelVersion, numExamples: 10, trainLoss: 0.5, delta };
  stats.uploadsSent++;
  stats.firstSendAt ??= Date.now();
  pending++;
  const round = stats; // the round this upload belongs to, even if the driver asks for the report meanwhile
  const timeoutMs = Math.max(0, configuration.deadlineAt - Date.now()) + ACK_GRACE_AFTER_DEADLINE_MS;
  try {
    const result =
      (configuration.upload ? await putUpload(device, configuration, upload, timeoutMs) : null) ??
      ((await socket.timeout(timeoutMs).emitWithAck(ClientEvent.update, upload)) as UpdateResult);
    round.lastAckAt = Date.now();
    if (result.accepted) round.accepted++;
    else {
      round.rejected++;
      round.rejections[result.reason] = (round.rejections[result.reason] ?? 0) + 1;
    }
  } catch {
    round.lostAcks++;
  } finally {
    pending--;
  }
}

async function connectAll(message: Extract<DriverMessage, { type: 'connect' }>): Promise<void> {
  const started = performance.now();
  let next = 0;
  let failed = 0;
  let firstError: string | null = null;
  const worker = async (): Promise<void> => {
    while (next < message.count) {
      const i = next++;
      const url = message.urls[(message.first + i) % message.urls.length]!;
      try {
        const localAddress = sourceAddress(message.generator, i);
        const socket = await connectDevice(url, { localAddress });
        socket.on('disconnect', () => {
          if (!closing) disconnects++;
        });
        socket.on(ServerEvent.configure, (configuration: RoundConfiguration) => {
          takePart({ socket, url, localAddress }, configuration).catch((error: unknown) => {
            firstError ??= String(error);
            stats.lostAcks++;
          });
        });
        socket.emit(ClientEvent.conditions, { eligible: true, reasons: [] });
        devices.push(socket);
      } catch (error) {
        failed++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: message.concurrency }, worker));
  send({ type: 'connected', connected: devices.length, failed, firstError, seconds: (performance.now() - started) / 1000 });
}

async function report(graceMs: number): Promise<void> {
  const until = Date.now() + graceMs;
  while (pending > 0 && Date.now() < until) await new Promise((wait) => setTimeout(wait, 100));
  const done = stats;
  stats = emptyStats();
  // Still pending after the grace: lost as far as this round is concerned.
  send({ type: 'round', stats: { ...done, lostAcks: done.lostAcks + pending, disconnects } });
}

function fail(error: unknown): never {
  console.error(error);
  process.exit(1);
}

process.on('message', (message: DriverMessage) => {
  if (message.type === 'connect') connectAll(message).catch(fail);
  else if (message.type === 'report') report(message.graceMs).catch(fail);
  else {
    closing = true;
    devices.forEach((socket) => socket.disconnect());
    process.exit(0);
  }
});
