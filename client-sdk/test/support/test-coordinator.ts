/**
 * A minimal coordinator for the SDK's tests: a real socket.io server speaking the Flock protocol
 * (handshake checks, the device's proof of possession verified with node:crypto, model fetch,
 * uploads, closes and publications driven by the test). It records
 * every event and every raw engine.io frame clients send, so tests can check what crossed the wire.
 * It is a fixture, not the coordinator (that lives in server/).
 */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs';
import { Server, type DefaultEventsMap, type Socket } from 'socket.io';
import {
  asFloat32,
  ClientEvent,
  decodeWeights,
  proofMessage,
  proofSchema,
  PROTOCOL_VERSION,
  publicKeyJwkSchema,
  ServerEvent,
  thumbprintInput,
  type ProofResult,
  type PublicKeyJwk,
  type ModelPayload,
  type RoundConfiguration,
  type UpdateResult,
  type UpdateUpload,
  type WeightSpec,
} from '../../src/protocol/index.js';

export interface ReceivedEvent {
  clientId: string;
  event: string;
  payload: unknown;
  at: number;
}

export const TEST_TOKEN = 'test-client-token';

/** Serializes a live model the way a coordinator stores versions (tfjs save format). */
export async function modelPayload(model: tf.LayersModel, version: number): Promise<ModelPayload> {
  let payload: ModelPayload | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      payload = {
        version,
        topology: artifacts.modelTopology as ModelPayload['topology'], // a JSON object: the model was saved as JSON
        weightSpecs: artifacts.weightSpecs as WeightSpec[],
        weights: Buffer.from(weightData),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return payload!;
}

/** What the handshake check keeps on a socket for its proof. */
interface HandshakeData {
  publicKey: PublicKeyJwk;
  clientId: string;
}
type TestServer = Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, HandshakeData>;

export class TestCoordinator {
  readonly received: ReceivedEvent[] = [];
  /** Raw engine.io packets received from clients (text frames and binary attachments). */
  readonly rawFrames: (string | Buffer)[] = [];
  readonly models = new Map<number, ModelPayload>();
  readonly sockets = new Map<string, Socket>();
  readonly handshakes: Record<string, unknown>[] = [];
  /** Whether each proof verified, in order. */
  readonly proofs: { clientId: string; verified: boolean }[] = [];
  currentVersion: number | null = null;
  maxUploadBytes = 50 * 1024 * 1024;
  /** Decides each upload's acknowledgement. */
  respondToUpload: (upload: UpdateUpload, clientId: string) => UpdateResult = () => ({ accepted: true });
  private readonly waiters: { match: (event: ReceivedEvent) => boolean; resolve: (event: ReceivedEvent) => void }[] = [];

  private constructor(
    readonly io: TestServer,
    private readonly http: HttpServer,
    readonly url: string,
  ) {}

  static async start(): Promise<TestCoordinator> {
    const http = createServer();
    const io: TestServer = new Server(http, { maxHttpBufferSize: 100 * 1024 * 1024 });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const coordinator = new TestCoordinator(io, http, `http://127.0.0.1:${port}`);
    coordinator.listen();
    return coordinator;
  }

  /** Accepts this credential besides TEST_TOKEN (a device token the test handed out). */
  acceptToken: (token: unknown) => boolean = () => false;
  /** Refuses every proof, as if the signature did not verify. */
  refuseProofs = false;

  private listen(): void {
    this.io.use((socket, next) => {
      const auth = socket.handshake.auth as Record<string, unknown>;
      this.handshakes.push({ ...auth });
      if (auth.token !== TEST_TOKEN && !this.acceptToken(auth.token)) return next(new Error('unauthorized'));
      if (auth.protocolVersion !== PROTOCOL_VERSION) return next(new Error('protocol_mismatch'));
      const publicKey = publicKeyJwkSchema.safeParse(auth.publicKey);
      if (!publicKey.success) return next(new Error('invalid_public_key'));
      socket.data.publicKey = publicKey.data;
      socket.data.clientId = createHash('sha256').update(thumbprintInput(publicKey.data)).digest('base64url');
      next();
    });
    this.io.on('connection', (socket) => {
      const { clientId } = socket.data;
      const challenge = randomBytes(32);
      socket.once(ClientEvent.proof, (proof: unknown, ack: (result: ProofResult) => void) => {
        const parsed = proofSchema.safeParse(proof);
        const key = createPublicKey({ key: socket.data.publicKey, format: 'jwk' });
        const verified =
          !this.refuseProofs &&
          parsed.success &&
          verify('sha256', proofMessage(challenge, clientId), { key, dsaEncoding: 'ieee-p1363' }, parsed.data.signature as Uint8Array);
        this.proofs.push({ clientId, verified });
        if (!verified) {
          ack({ accepted: false, reason: 'invalid_proof', message: 'the signature does not verify' });
          socket.disconnect(true);
          return;
        }
        ack({ accepted: true });
        this.welcome(clientId, socket);
      });
      socket.emit(ServerEvent.challenge, { challenge });
    });
  }

  /** The device proved its key: it is registered and welcomed. */
  private welcome(clientId: string, socket: Socket): void {
    this.sockets.set(clientId, socket);
    socket.conn.on('packet', (packet: { type: string; data?: string | Buffer }) => {
      if (packet.type === 'message' && packet.data !== undefined) this.rawFrames.push(packet.data);
    });
    socket.onAny((event: string, payload: unknown) => this.record({ clientId, event, payload, at: Date.now() }));
    socket.on(ClientEvent.fetchModel, (request: { version?: number }, ack: (result: unknown) => void) => {
      const version = request.version ?? this.currentVersion ?? -1;
      const model = this.models.get(version);
      ack(model ? { ok: true, model } : { ok: false, error: `no version ${version}` });
    });
    socket.on(ClientEvent.update, (upload: UpdateUpload, ack: (result: UpdateResult) => void) => ack(this.respondToUpload(upload, clientId)));
    socket.on('disconnect', () => {
      if (this.sockets.get(clientId) === socket) this.sockets.delete(clientId);
    });
    socket.emit(ServerEvent.welcome, {
      clientId,
      protocolVersion: PROTOCOL_VERSION,
      currentModelVersion: this.currentVersion,
      maxUploadBytes: this.maxUploadBytes,
    });
  }

  private record(event: ReceivedEvent): void {
    this.received.push(event);
    for (const waiter of [...this.waiters]) {
      if (waiter.match(event)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  }

  /** Resolves with the first event (already received after `since`, or future) that matches. */
  waitFor(event: string, predicate: (payload: unknown, clientId: string) => boolean = () => true, since = 0, timeoutMs = 20_000): Promise<ReceivedEvent> {
    const match = (candidate: ReceivedEvent): boolean => candidate.event === event && candidate.at >= since && predicate(candidate.payload, candidate.clientId);
    const existing = this.received.find(match);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (found) => {
          clearTimeout(timer);
          resolve(found);
        },
      });
    });
  }

  eventsOf(event: string): ReceivedEvent[] {
    return this.received.filter((candidate) => candidate.event === event);
  }

  async addModel(model: tf.LayersModel, version = (this.currentVersion ?? 0) + 1): Promise<number> {
    this.models.set(version, await modelPayload(model, version));
    this.currentVersion = Math.max(this.currentVersion ?? 0, version);
    return version;
  }

  /** Commits version + 1 = version + delta (what aggregation of one update does). */
  commitDelta(version: number, upload: UpdateUpload): number {
    const base = this.models.get(version)!;
    const weights = Float32Array.from(asFloat32(base.weights));
    const delta = decodeWeights(upload.delta);
    let offset = 0;
    for (const tensor of delta) {
      for (let i = 0; i < tensor.length; i++) weights[offset + i]! += tensor[i]!;
      offset += tensor.length;
    }
    const next = Math.max(...this.models.keys()) + 1;
    this.models.set(next, { ...base, version: next, weights: Buffer.from(weights.buffer) });
    this.currentVersion = next;
    return next;
  }

  configure(clientId: string, configuration: RoundConfiguration): void {
    const socket = this.sockets.get(clientId);
    if (!socket) throw new Error(`client ${clientId} is not connected`);
    socket.emit(ServerEvent.configure, configuration);
  }

  closeRound(roundId: string, outcome: 'committed' | 'failed' | 'aborted', modelVersion: number | null): void {
    this.io.emit(ServerEvent.roundClosed, { roundId, outcome, modelVersion });
  }

  publish(version: number): void {
    this.io.emit(ServerEvent.modelPublished, { version, parentVersion: version > 1 ? version - 1 : null, roundId: null });
  }

  async waitForConnection(clientId: string, timeoutMs = 10_000): Promise<Socket> {
    const started = Date.now();
    while (!this.sockets.has(clientId)) {
      if (Date.now() - started > timeoutMs) throw new Error(`client ${clientId} did not connect`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.sockets.get(clientId)!;
  }

  async close(): Promise<void> {
    await this.io.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
