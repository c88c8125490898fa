/**
 * The device's session with the coordinator: one socket.io socket and its handshake, every message
 * from the coordinator checked against the protocol's schema before anything else sees it,
 * acknowledged requests (model fetch, upload) with a timeout and a checked answer, and the mapping
 * of connection failures to client errors. socket.io reconnects by itself after drops.
 */
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import type { z } from 'zod';
import { ClientEvent, ServerEvent } from '../protocol/events.js';
import { PROTOCOL_VERSION, welcomeSchema, type HandshakeAuth, type Welcome } from '../protocol/handshake.js';
import { modelFetchResultSchema, modelPublishedSchema, type EvaluationReport, type ModelPayload, type ModelPublished } from '../protocol/model-messages.js';
import { CONNECT_ERRORS, type ConnectError } from '../protocol/reasons.js';
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
import type { FlockSocket, SocketFactory } from './client-types.js';
import { DEFAULT_SOCKET_OPTIONS } from './defaults.js';
import { errorMessage, FlockClientError } from './errors.js';
import { SDK_VERSION } from './version.js';

export interface ConnectionOptions {
  serverUrl: string;
  clientToken: string;
  clientId: string;
  requestTimeoutMs: number;
  socketOptions: Partial<ManagerOptions & SocketOptions> | undefined;
  socketFactory: SocketFactory | undefined;
}

/** What the connection tells its owner. Coordinator messages arrive already validated. */
export interface ConnectionListener {
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

export class Connection {
  private readonly socket: FlockSocket;
  private readonly requestTimeoutMs: number;
  private currentWelcome: Welcome | null = null;
  private unreachableReported = false;

  constructor(
    options: ConnectionOptions,
    private readonly listener: ConnectionListener,
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.socket = openSocket(options);
    this.listenToSession();
    this.listenToMessages();
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** The coordinator's welcome on the current connection (null before it arrives and after a disconnect). */
  get welcome(): Welcome | null {
    return this.currentWelcome;
  }

  /** Fetches global model `version`; throws a FlockClientError when it cannot. */
  async fetchModel(version: number): Promise<ModelPayload> {
    if (!this.connected) throw new FlockClientError('model_fetch_failed', `cannot fetch model version ${version}: not connected`);
    const result = await this.request(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.fetchModel, { version }), modelFetchResultSchema, {
      unanswered: (error) => new FlockClientError('model_fetch_failed', `fetching model version ${version} failed: ${errorMessage(error)}`, { cause: error, modelVersion: version }),
      malformed: (issues) => new FlockClientError('protocol', `malformed model: ${issues}`, { modelVersion: version }),
    });
    if (!result.ok) throw new FlockClientError('model_fetch_failed', `the coordinator has no model version ${version}: ${result.error}`, { modelVersion: version });
    if (result.model.version !== version) {
      throw new FlockClientError('protocol', `asked for model version ${version}, received ${result.model.version}`, { modelVersion: version });
    }
    return result.model;
  }

  /** Sends an update and returns the coordinator's verdict; throws when it is not acknowledged. */
  upload(upload: UpdateUpload): Promise<UpdateResult> {
    const { roundId } = upload;
    return this.request(() => this.socket.timeout(this.requestTimeoutMs).emitWithAck(ClientEvent.update, upload), updateResultSchema, {
      unanswered: (error) => new FlockClientError('upload_failed', `upload for round ${roundId} was not acknowledged: ${errorMessage(error)}`, { cause: error, roundId }),
      malformed: (issues) => new FlockClientError('protocol', `malformed upload acknowledgement: ${issues}`, { roundId }),
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
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }

  private listenToSession(): void {
    this.socket.on('connect', () => {
      this.unreachableReported = false;
      this.listener.connected();
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
      ServerEvent.welcome,
      this.validated(welcomeSchema, 'welcome', (welcome) => {
        this.currentWelcome = welcome;
        listener.welcome(welcome);
      }),
    );
    this.socket.on(ServerEvent.configure, this.validated(roundConfigurationSchema, 'round configuration', (message) => listener.configure(message)));
    this.socket.on(ServerEvent.roundClosed, this.validated(roundClosedSchema, 'round:closed', (message) => listener.roundClosed(message)));
    this.socket.on(ServerEvent.modelPublished, this.validated(modelPublishedSchema, 'model:published', (message) => listener.modelPublished(message)));
    this.socket.on(ServerEvent.updateRejected, this.validated(updateRejectedSchema, 'round:update-rejected', (message) => listener.updateRejected(message)));
  }

  /**
   * A refusal by the coordinator's handshake check is final (socket.io does not retry middleware
   * refusals); an unreachable coordinator is reported once until the next success (socket.io retries).
   */
  private reportConnectFailure(error: Error): void {
    if (REFUSALS.includes(error.message)) {
      this.listener.error(new FlockClientError(error.message as ConnectError, `the coordinator refused the connection: ${error.message}`, { cause: error }));
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

/**
 * The handshake: the device proves it may connect (client token) and says who it is and which
 * protocol it speaks. The coordinator answers with `server:welcome` or refuses with `connect_error`.
 */
function openSocket(options: ConnectionOptions): FlockSocket {
  const auth: HandshakeAuth = { token: options.clientToken, clientId: options.clientId, protocolVersion: PROTOCOL_VERSION, sdkVersion: SDK_VERSION };
  const factory: SocketFactory = options.socketFactory ?? ((url, socketOptions) => io(url, socketOptions) as FlockSocket);
  return factory(options.serverUrl, { ...DEFAULT_SOCKET_OPTIONS, ...options.socketOptions, auth: { ...auth } });
}
