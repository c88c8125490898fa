/**
 * The device's session with the coordinator: one socket.io socket, its handshake (a credential and
 * the device's public key) and the proof of possession that follows it (the device signs the
 * coordinator's challenge; the session is open at `server:welcome`), every message from the
 * coordinator checked against the protocol's schema before anything else sees it, acknowledged
 * requests (model fetch, upload) with a timeout and a checked answer, and the mapping of connection
 * failures to client errors. socket.io reconnects by itself after drops, with a fresh credential
 * and a fresh proof each time.
 */
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import type { z } from 'zod';
import { ClientEvent, ServerEvent } from '../protocol/events.js';
import {
  challengeSchema,
  PROTOCOL_VERSION,
  busyRefusalSchema,
  proofResultSchema,
  welcomeSchema,
  type Challenge,
  type HandshakeAuth,
  type Welcome,
} from '../protocol/handshake.js';
import { modelFetchResultSchema, modelPublishedSchema, type EvaluationReport, type ModelPayload, type ModelPublished } from '../protocol/model-messages.js';
import { CONNECT_ERRORS, type ConnectError } from '../protocol/reasons.js';
import { encodeUploadBody, uploadUrl, type UploadEndpoint } from '../protocol/upload-endpoint.js';
import {
  roundClosedSchema,
  roundConfigurationSchema,
  updateRejectedSchema,
  updateResultSchema,
  type Abandon,
  type ConditionsReport,
  type RoundClosed,
  type RoundConfiguration,
  type UpdateRejected,
  type UpdateResult,
  type UpdateUpload,
} from '../protocol/round-messages.js';
import {
  secAggAckSchema,
  secAggRelaySchema,
  secAggRosterSchema,
  secAggUnmaskSchema,
  type SecAggAck,
  type SecAggAdvertise,
  type SecAggMasked,
  type SecAggReveal,
  type SecAggShares,
} from '../protocol/secagg-messages.js';
import type { FlockSocket, SocketFactory } from './client-types.js';
import { SecAggInbox } from './secagg-inbox.js';
import { DEFAULT_SOCKET_OPTIONS } from './defaults.js';
import { errorMessage, FlockClientError } from './errors.js';
import type { DeviceIdentity } from './identity.js';
import { hostFetch, schedule, timeoutSignal, type AbortSignalLike, type FetchLike, type FetchResponseLike } from './runtime.js';
import { SDK_VERSION } from './version.js';

export interface ConnectionOptions {
  serverUrl: string;
  /** The credential of each connection attempt: the shared client token, or a device token. */
  credential: () => Promise<string>;
  /** Whether asking `credential` again may give a better one (a deviceToken function): then an expired token is retried. */
  credentialRefreshes: boolean;
  /** How long to wait before retrying with a fresh credential. */
  credentialRetryMs: number;
  identity: DeviceIdentity;
  requestTimeoutMs: number;
  socketOptions: Partial<ManagerOptions & SocketOptions> | undefined;
  socketFactory: SocketFactory | undefined;
  /** HTTP uploads' transport; undefined: the host's fetch. */
  fetch?: FetchLike | undefined;
}

/** What the connection tells its owner. Coordinator messages arrive already validated. */
export interface ConnectionListener {
  /** The session is open: the coordinator verified the device's proof and welcomed it. */
  connected(): void;
  /** A connection attempt failed (refused, or the coordinator is unreachable); the error was reported. */
  connectFailed(): void;
  disconnected(): void;
  welcome(welcome: Welcome): void;
  configure(configuration: RoundConfiguration): void;
  roundClosed(closed: RoundClosed): void;
  modelPublished(published: ModelPublished): void;
  updateRejected(rejection: UpdateRejected): void;
  error(error: FlockClientError): void;
}

const REFUSALS: readonly string[] = CONNECT_ERRORS;

/** The device's secure-aggregation messages, each with its event. */
export type SecAggOutgoing =
  | { event: typeof ClientEvent.secAggAdvertise; payload: SecAggAdvertise }
  | { event: typeof ClientEvent.secAggShares; payload: SecAggShares }
  | { event: typeof ClientEvent.secAggMasked; payload: SecAggMasked }
  | { event: typeof ClientEvent.secAggReveal; payload: SecAggReveal };

export class Connection {
  private readonly socket: FlockSocket;
  private readonly requestTimeoutMs: number;
  private currentWelcome: Welcome | null = null;
  private unreachableReported = false;
  private cancelRetry: (() => void) | null = null;
  private closed = false;
  /** Set once an HTTP upload could not reach the coordinator's upload listener: this session's uploads take the socket. */
  private uploadListenerUnreachable = false;
  /** Secure rounds: the coordinator's messages to this device, until the round job takes them. */
  readonly secAggInbox = new SecAggInbox();

  constructor(
    private readonly options: ConnectionOptions,
    private readonly listener: ConnectionListener,
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.socket = this.openSocket();
    this.listenToSession();
    this.listenToMessages();
  }

  /** True while the session is open (proof verified, welcome received). */
  get connected(): boolean {
    return this.socket.connected && this.currentWelcome !== null;
  }

  /** The coordinator's welcome on the current connection (null before it arrives and after a disconnect). */
  get welcome(): Welcome | null {
    return this.currentWelcome;
  }

  /** Fetches global model `version`; throws a FlockClientError when it cannot. */
  async fetchModel(version: number, deltaFrom?: number): Promise<ModelPayload> {
    if (!this.connected) throw new FlockClientError('model_fetch_failed', `cannot fetch model version ${version}: not connected`);
    const request = deltaFrom === undefined ? { version } : { version, deltaFrom };
    const result = await this.request(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.fetchModel, request), modelFetchResultSchema, {
      unanswered: (error) =>
        new FlockClientError('model_fetch_failed', `fetching model version ${version} failed: ${errorMessage(error)}`, {
          cause: error,
          modelVersion: version,
        }),
      malformed: (issues) => new FlockClientError('protocol', `malformed model: ${issues}`, { modelVersion: version }),
    });
    if (!result.ok)
      throw new FlockClientError('model_fetch_failed', `the coordinator has no model version ${version}: ${result.error}`, { modelVersion: version });
    if (result.model.version !== version) {
      throw new FlockClientError('protocol', `asked for model version ${version}, received ${result.model.version}`, { modelVersion: version });
    }
    if (result.model.deltaFrom !== undefined && result.model.deltaFrom !== deltaFrom) {
      throw new FlockClientError('protocol', `received a delta from version ${result.model.deltaFrom}, asked for one from ${deltaFrom ?? 'none'}`, {
        modelVersion: version,
      });
    }
    return result.model;
  }

  /**
   * Sends an update and returns the coordinator's verdict; throws when it is not acknowledged. With
   * the plan's `endpoint`, the bytes go over HTTP to the upload listener (upload-endpoint.ts); when
   * the listener cannot be reached or is at capacity, over the socket.
   */
  async upload(upload: UpdateUpload, endpoint?: UploadEndpoint): Promise<UpdateResult> {
    // A local, so that it is called unbound: a browser's fetch throws when `this` is another object.
    const send = this.options.fetch ?? hostFetch();
    if (endpoint && !this.uploadListenerUnreachable && send) {
      const answered = await this.uploadOverHttp(send, upload, endpoint);
      if (answered) return answered;
    }
    const { roundId } = upload;
    return this.request(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.update, upload), updateResultSchema, {
      unanswered: (error) =>
        new FlockClientError('upload_failed', `upload for round ${roundId} was not acknowledged: ${errorMessage(error)}`, { cause: error, roundId }),
      malformed: (issues) => new FlockClientError('protocol', `malformed upload acknowledgement: ${issues}`, { roundId }),
    });
  }

  /**
   * The listener's verdict; null when it asked to go elsewhere (503), or could not be reached or
   * answered something else (a proxy's error page): then never again this session.
   */
  private async uploadOverHttp(send: FetchLike, upload: UpdateUpload, endpoint: UploadEndpoint): Promise<UpdateResult | null> {
    let response: FetchResponseLike;
    try {
      response = await send(uploadUrl(endpoint, this.options.serverUrl), {
        method: 'PUT',
        headers: { authorization: `Bearer ${endpoint.ticket}`, 'content-type': 'application/octet-stream' },
        body: encodeUploadBody(upload),
        ...withSignal(timeoutSignal(this.requestTimeoutMs)),
      });
    } catch {
      // Refused, blocked (a firewall, a proxy, CORS) or timed out: the socket reaches the coordinator.
      this.uploadListenerUnreachable = true;
      return null;
    }
    if (response.status === 503) return null;
    const result = updateResultSchema.safeParse(await response.json().catch(() => null));
    if (!result.success) this.uploadListenerUnreachable = true;
    return result.success ? result.data : null;
  }

  /** A secure round's message (secagg-messages.ts) and the coordinator's acknowledgement; throws when unacknowledged. */
  secAgg(message: SecAggOutgoing): Promise<SecAggAck> {
    const { roundId } = message.payload;
    const send = (): Promise<unknown> => {
      const socket = this.socket.timeout(this.requestTimeoutMs);
      switch (message.event) {
        case ClientEvent.secAggAdvertise:
          return socket.emitWithAck(ClientEvent.secAggAdvertise, message.payload);
        case ClientEvent.secAggShares:
          return socket.emitWithAck(ClientEvent.secAggShares, message.payload);
        case ClientEvent.secAggMasked:
          return socket.emitWithAck(ClientEvent.secAggMasked, message.payload);
        case ClientEvent.secAggReveal:
          return socket.emitWithAck(ClientEvent.secAggReveal, message.payload);
      }
    };
    return this.request(send, secAggAckSchema, {
      unanswered: (error) =>
        new FlockClientError('upload_failed', `${message.event} for round ${roundId} was not acknowledged: ${errorMessage(error)}`, { cause: error, roundId }),
      malformed: (issues) => new FlockClientError('protocol', `malformed ${message.event} acknowledgement: ${issues}`, { roundId }),
    });
  }

  /** The fire-and-forget messages: each returns whether it was sent (false while disconnected). */
  reportConditions(report: ConditionsReport): boolean {
    if (!this.connected) return false;
    this.socket.emit(ClientEvent.conditions, report);
    return true;
  }

  abandon(abandon: Abandon): boolean {
    if (!this.connected) return false;
    this.socket.emit(ClientEvent.abandon, abandon);
    return true;
  }

  reportEvaluation(report: EvaluationReport): boolean {
    if (!this.connected) return false;
    this.socket.emit(ClientEvent.evaluation, report);
    return true;
  }

  /** Disconnects for good (no reconnection) and tells no one. */
  close(): void {
    this.closed = true;
    this.cancelRetry?.();
    this.cancelRetry = null;
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }

  /**
   * The handshake: the device presents its credential and public key and says which protocol it
   * speaks. `auth` is a function, so each attempt (reconnections too) gets a fresh credential.
   */
  private openSocket(): FlockSocket {
    const { serverUrl, socketOptions, socketFactory } = this.options;
    const auth = (send: (auth: HandshakeAuth) => void): void => {
      this.handshakeAuth().then(
        (handshake) => {
          if (!this.closed) send(handshake);
        },
        (error: unknown) => {
          if (!this.closed) this.credentialFailed(error);
        },
      );
    };
    const factory: SocketFactory = socketFactory ?? ((url, options) => io(url, options));
    return factory(serverUrl, { ...DEFAULT_SOCKET_OPTIONS, ...socketOptions, auth: auth });
  }

  private async handshakeAuth(): Promise<HandshakeAuth> {
    const token = await this.options.credential();
    if (typeof token !== 'string' || token.length === 0) throw new Error('no token');
    return { token, publicKey: this.options.identity.publicKey, protocolVersion: PROTOCOL_VERSION, sdkVersion: SDK_VERSION };
  }

  /** The app's deviceToken function failed: this attempt is dropped and another made later. */
  private credentialFailed(error: unknown): void {
    this.listener.error(
      new FlockClientError('device_token_failed', `getting a device token failed (retrying later): ${errorMessage(error)}`, { cause: error }),
    );
    this.socket.disconnect();
    this.listener.connectFailed();
    this.retryLater();
  }

  private retryLater(afterMs = this.options.credentialRetryMs): void {
    this.cancelRetry?.();
    this.cancelRetry = schedule(() => {
      this.cancelRetry = null;
      if (!this.socket.connected) this.socket.connect();
    }, afterMs);
  }

  private listenToSession(): void {
    this.socket.on('connect', () => {
      this.unreachableReported = false;
    });
    this.socket.on('connect_error', (error: Error) => {
      this.reportConnectFailure(error);
      this.listener.connectFailed();
    });
    this.socket.on('disconnect', () => {
      this.currentWelcome = null;
      this.listener.disconnected();
    });
  }

  private listenToMessages(): void {
    const { listener } = this;
    this.socket.on(
      ServerEvent.challenge,
      this.validated(challengeSchema, 'challenge', (challenge) => {
        // prove() reports its own failures; this catches only a listener that throws.
        this.prove(challenge).catch((error: unknown) =>
          this.listener.error(new FlockClientError('connection', `proving the device key failed: ${errorMessage(error)}`, { cause: error })),
        );
      }),
    );
    this.socket.on(
      ServerEvent.welcome,
      this.validated(welcomeSchema, 'welcome', (welcome) => {
        this.currentWelcome = welcome;
        listener.connected();
        listener.welcome(welcome);
      }),
    );
    this.socket.on(
      ServerEvent.configure,
      this.validated(roundConfigurationSchema, 'round configuration', (message) => listener.configure(message)),
    );
    this.socket.on(
      ServerEvent.roundClosed,
      this.validated(roundClosedSchema, 'round:closed', (message) => listener.roundClosed(message)),
    );
    this.socket.on(
      ServerEvent.modelPublished,
      this.validated(modelPublishedSchema, 'model:published', (message) => listener.modelPublished(message)),
    );
    this.socket.on(
      ServerEvent.secAggRoster,
      this.validated(secAggRosterSchema, 'secagg:roster', (message) => this.secAggInbox.deliver('roster', message)),
    );
    this.socket.on(
      ServerEvent.secAggRelay,
      this.validated(secAggRelaySchema, 'secagg:relay', (message) => this.secAggInbox.deliver('relay', message)),
    );
    this.socket.on(
      ServerEvent.secAggUnmask,
      this.validated(secAggUnmaskSchema, 'secagg:unmask', (message) => this.secAggInbox.deliver('unmask', message)),
    );
    this.socket.on(
      ServerEvent.updateRejected,
      this.validated(updateRejectedSchema, 'round:update-rejected', (message) => listener.updateRejected(message)),
    );
  }

  /**
   * Answers the challenge with the device's signature. The coordinator welcomes the device once it
   * verifies; a refusal comes with its reason, and the coordinator then closes the socket.
   */
  private async prove({ challenge }: Challenge): Promise<void> {
    try {
      const signature = await this.options.identity.prove(challenge);
      const result = await this.request(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.proof, { signature }), proofResultSchema, {
        unanswered: (error) => new FlockClientError('connection', `the proof of the device key was not acknowledged: ${errorMessage(error)}`, { cause: error }),
        malformed: (issues) => new FlockClientError('protocol', `malformed proof acknowledgement: ${issues}`),
      });
      if (result.accepted) return;
      this.listener.error(new FlockClientError(result.reason, `the coordinator refused the device's proof: ${result.reason} (${result.message})`));
      this.listener.connectFailed();
    } catch (error) {
      this.listener.error(
        error instanceof FlockClientError
          ? error
          : new FlockClientError('connection', `proving the device key failed: ${errorMessage(error)}`, { cause: error }),
      );
    }
  }

  /**
   * A refusal by the coordinator's handshake check is final (socket.io does not retry middleware
   * refusals), except an expired token when a fresh one can be asked for and a full address; an unreachable coordinator
   * is reported once until the next success (socket.io retries).
   */
  private reportConnectFailure(error: Error): void {
    if (REFUSALS.includes(error.message)) {
      this.listener.error(new FlockClientError(error.message as ConnectError, `the coordinator refused the connection: ${error.message}`, { cause: error }));
      // Three refusals pass: an expired token when a fresh one can be asked for, a full address (others may leave),
      // and a busy coordinator, which says when to come back.
      if ((error.message === 'token_expired' && this.options.credentialRefreshes) || error.message === 'too_many_connections') this.retryLater();
      if (error.message === 'coordinator_busy') {
        const busy = busyRefusalSchema.safeParse((error as Error & { data?: unknown }).data);
        this.retryLater(busy.success ? busy.data.retryAfterMs : this.options.credentialRetryMs);
      }
    } else if (!this.unreachableReported) {
      this.unreachableReported = true;
      this.listener.error(new FlockClientError('connection', `cannot reach the coordinator (retrying): ${error.message}`, { cause: error }));
    }
  }

  /** A socket listener that passes only messages matching `schema` and reports the others. */
  private validated<T>(schema: z.ZodType<T>, what: string, handle: (message: T) => void): (message: unknown) => void {
    return (message) => {
      const parsed = schema.safeParse(message);
      if (parsed.success) handle(parsed.data);
      else this.listener.error(new FlockClientError('protocol', `malformed ${what}: ${parsed.error.message}`));
    };
  }

  /** An acknowledged request whose answer must match `schema`. */
  private async request<T>(
    send: () => Promise<unknown>,
    schema: z.ZodType<T>,
    errors: { unanswered: (error: unknown) => FlockClientError; malformed: (issues: string) => FlockClientError },
  ): Promise<T> {
    let answer: unknown;
    try {
      answer = await send();
    } catch (error) {
      throw errors.unanswered(error);
    }
    const parsed = schema.safeParse(answer);
    if (!parsed.success) throw errors.malformed(parsed.error.message);
    return parsed.data;
  }
}

/** `{ signal }` when there is one, typed as nothing: FetchInitLike leaves the signal out so that every fetch fits it. */
function withSignal(signal: AbortSignalLike | undefined): object {
  return signal ? { signal } : {};
}
