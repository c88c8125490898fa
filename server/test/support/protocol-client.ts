import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import {
  ClientEvent,
  PROTOCOL_VERSION,
  ServerEvent,
  asFloat32,
  bytesOf,
  proofMessage,
  thumbprintInput,
  encodeWeights,
  encodeUploadBody,
  splitTensors,
  uploadUrl,
  type ClientToServerEvents,
  type ModelFetchResult,
  type ModelPayload,
  type ModelPublished,
  type ProofResult,
  type PublicKeyJwk,
  type RoundClosed,
  type RoundConfiguration,
  type ServerToClientEvents,
  type UpdateRejected,
  type UpdateResult,
  type UpdateUpload,
  type Welcome,
} from '@flock/client-sdk/protocol';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';
import { CLIENT_TOKEN } from './coordinator.js';

/** Waits for the next value pushed into a list. */
class Inbox<T> {
  readonly items: T[] = [];
  private waiters: ((item: T) => void)[] = [];
  push(item: T): void {
    this.items.push(item);
    this.waiters.splice(0).forEach((resolve) => resolve(item));
  }
  /** The first item at or after index `from` (default: the first one received). */
  async next(from = 0, timeoutMs = 15_000): Promise<T> {
    if (this.items.length > from) return this.items[from]!;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a server event')), timeoutMs);
      this.waiters.push((item) => {
        clearTimeout(timer);
        resolve(item);
      });
    });
  }
}

/** A device key pair made with node:crypto (the SDK makes its keys with WebCrypto). */
export interface DeviceKey {
  privateKey: KeyObject;
  publicKey: PublicKeyJwk;
  /** The public key's RFC 7638 thumbprint. */
  clientId: string;
}

export function newDeviceKey(): DeviceKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { x, y } = publicKey.export({ format: 'jwk' });
  const jwk: PublicKeyJwk = { kty: 'EC', crv: 'P-256', x: x!, y: y! };
  return { privateKey, publicKey: jwk, clientId: createHash('sha256').update(thumbprintInput(jwk)).digest('base64url') };
}

/** The device's answer to a challenge: its signature of the proof message, as WebCrypto makes it (r || s). */
export function signChallenge(key: DeviceKey, challenge: Uint8Array, clientId = key.clientId): Buffer {
  return sign('sha256', proofMessage(challenge, clientId), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
}

export interface ConnectOptions {
  token?: string;
  protocolVersion?: number;
  eligible?: boolean;
  /** The device key (default: a new one). */
  key?: DeviceKey;
  /** Presents this value as the public key instead of the key's own (an impostor, or garbage). */
  publicKey?: unknown;
  /** Answers the challenge with this proof payload instead of the key's signature. */
  proof?: (challenge: Buffer) => unknown;
  /** Extra HTTP headers of the handshake request (e.g. X-Forwarded-For). */
  headers?: Record<string, string>;
  /** The loopback source address to connect from (default: one of its own, see nextLoopbackAddress). */
  localAddress?: string;
}

let loopbackAddresses = 0;

/**
 * A loopback address no other test device of this process used (127.3.x.y; Linux routes all of
 * 127.0.0.0/8 to the loopback interface). Devices of one address are limited per round
 * (FLOCK_MAX_SELECTED_PER_ADDRESS): test devices each have their own, as phones would.
 */
export function nextLoopbackAddress(): string {
  const n = loopbackAddresses++;
  return `127.3.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
}

/**
 * A bare socket.io device speaking the wire protocol, used to drive the coordinator precisely
 * (including with invalid uploads and proofs). The SDK's FederatedClient is tested against the
 * coordinator separately.
 */
export class ProtocolClient {
  readonly configurations = new Inbox<RoundConfiguration>();
  readonly closed = new Inbox<RoundClosed>();
  readonly rejections = new Inbox<UpdateRejected>();
  readonly published = new Inbox<ModelPublished>();
  welcome!: Welcome;
  /** The challenge this connection answered and the proof sent (what an eavesdropper could replay). */
  challenge!: Buffer;
  proof!: unknown;

  private constructor(
    readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>,
    readonly key: DeviceKey,
    /** The coordinator's URL (HTTP uploads go to its host at the listener's port). */
    readonly url: string,
  ) {
    socket.on(ServerEvent.configure, (c) => this.configurations.push(c));
    socket.on(ServerEvent.roundClosed, (c) => this.closed.push(c));
    socket.on(ServerEvent.updateRejected, (r) => this.rejections.push(r));
    socket.on(ServerEvent.modelPublished, (p) => this.published.push(p));
  }

  /** The id the coordinator knows this device by (the key's thumbprint). */
  get clientId(): string {
    return this.key.clientId;
  }

  /**
   * Connects, answers the challenge and resolves once welcomed; rejects with the refusal's reason
   * (handshake `connect_error`, or the proof's acknowledgement).
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<ProtocolClient> {
    const key = options.key ?? newDeviceKey();
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, {
      auth: {
        token: options.token ?? CLIENT_TOKEN,
        publicKey: options.publicKey ?? key.publicKey,
        protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
      },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      extraHeaders: options.headers,
      // engine.io-client passes it on to ws in Node, though its option types omit it.
      ...({ localAddress: options.localAddress ?? nextLoopbackAddress() } as object),
    });
    const client = new ProtocolClient(socket, key, url);
    client.welcome = await new Promise<Welcome>((resolve, reject) => {
      socket.once(ServerEvent.welcome, resolve);
      socket.once('connect_error', (error) => reject(error));
      socket.once(ServerEvent.challenge, ({ challenge }) => {
        client.challenge = Buffer.from(bytesOf(challenge));
        client.proof = options.proof ? options.proof(client.challenge) : { signature: signChallenge(key, client.challenge) };
        socket
          .timeout(15_000)
          .emitWithAck(ClientEvent.proof, client.proof as { signature: Buffer })
          .then((result: ProofResult) => {
            if (!result.accepted) reject(new Error(result.reason));
          }, reject);
      });
    });
    if (options.eligible ?? true) client.setEligible(true);
    return client;
  }

  setEligible(eligible: boolean): void {
    this.socket.emit(ClientEvent.conditions, { eligible, reasons: eligible ? [] : ['not_charging'] });
  }

  async fetchModel(version?: number): Promise<ModelPayload> {
    // socket.io types the answer of a timed emitWithAck as any: name the protocol's type.
    const result = (await this.socket.timeout(15_000).emitWithAck(ClientEvent.fetchModel, version === undefined ? {} : { version })) as ModelFetchResult;
    if (!result.ok) throw new Error(result.error);
    return result.model;
  }

  /** Raw upload: whatever payload the test wants to send. */
  async uploadRaw(payload: unknown): Promise<UpdateResult> {
    return (await this.socket.timeout(15_000).emitWithAck(ClientEvent.update, payload as UpdateUpload)) as UpdateResult;
  }

  /** Uploads a delta given as per-tensor arrays for the configured round. */
  async upload(configuration: RoundConfiguration, model: ModelPayload, delta: Float32Array[], numExamples: number, trainLoss = 0.5): Promise<UpdateResult> {
    return this.uploadRaw(updateFor(configuration, model, delta, numExamples, trainLoss));
  }

  /** Uploads like upload() but over HTTP, to the endpoint the configuration names (upload-endpoint.ts). */
  async uploadOverHttp(
    configuration: RoundConfiguration,
    model: ModelPayload,
    delta: Float32Array[],
    numExamples: number,
    trainLoss = 0.5,
  ): Promise<UpdateResult> {
    const response = await this.putUpload(configuration, encodeUploadBody(updateFor(configuration, model, delta, numExamples, trainLoss)));
    return (await response.json()) as UpdateResult;
  }

  /** A raw PUT to the configuration's upload endpoint, with its ticket unless `headers` say otherwise. */
  putUpload(configuration: RoundConfiguration, body: Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}): Promise<Response> {
    if (!configuration.upload) throw new Error(`round ${configuration.roundId}'s plan names no upload endpoint`);
    return noKeepAliveFetch(uploadUrl(configuration.upload, this.url), {
      method: 'PUT',
      headers: { authorization: `Bearer ${configuration.upload.ticket}`, ...headers },
      body,
    });
  }

  abandon(roundId: string, reason: 'conditions_changed' | 'stopped' = 'conditions_changed'): void {
    this.socket.emit(ClientEvent.abandon, { roundId, reason });
  }

  disconnect(): void {
    this.socket.disconnect();
  }
}

/** The round:update message for a delta given as per-tensor arrays, in the configured round. */
function updateFor(configuration: RoundConfiguration, model: ModelPayload, delta: Float32Array[], numExamples: number, trainLoss: number): UpdateUpload {
  const encoded = encodeWeights(
    delta,
    model.weightSpecs.map((spec) => spec.shape),
  );
  return { roundId: configuration.roundId, modelVersion: configuration.modelVersion, numExamples, trainLoss, delta: encoded };
}

/** Per-tensor views of a model payload's weights. */
export function modelTensors(model: ModelPayload): Float32Array[] {
  return splitTensors(
    asFloat32(model.weights),
    model.weightSpecs.map((spec) => spec.shape),
  );
}

/** A deterministic delta of the model's shapes: value = scale * sin(index + seed). */
export function makeDelta(model: ModelPayload, seed: number, scale = 0.01): Float32Array[] {
  return model.weightSpecs.map((spec, t) => {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    return Float32Array.from({ length: size }, (_, i) => scale * Math.sin(i * 0.37 + seed * 1.3 + t));
  });
}

/** Opens a raw socket with the given handshake `auth` and returns the refusal socket.io reports (fails if it is accepted). */
export function handshakeRefusal(url: string, auth: unknown): Promise<{ message: string; code: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = io(url, { auth: auth as Record<string, unknown>, transports: ['websocket'], reconnection: false, forceNew: true });
    const timer = setTimeout(() => reject(new Error('no answer to the handshake')), 5_000);
    socket.on('connect', () => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`handshake ${JSON.stringify(auth)?.slice(0, 200)} was accepted`));
    });
    socket.on('connect_error', (error: Error & { data?: { code?: unknown } }) => {
      clearTimeout(timer);
      socket.close();
      resolve({ message: error.message, code: error.data?.code });
    });
  });
}
