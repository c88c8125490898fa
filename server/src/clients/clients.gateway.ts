import { Inject } from '@nestjs/common';
import {
  Ack,
  ConnectedSocket,
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
} from '@nestjs/websockets';
import type { Socket } from 'socket.io';
import {
  ClientEvent,
  PROTOCOL_VERSION,
  ServerEvent,
  conditionsReportSchema,
  modelFetchRequestSchema,
  uploadRoundSchema,
  type ClientToServerEvents,
  type ConnectError,
  type EvaluationReportResult,
  type ModelFetchResult,
  type ProofResult,
  type SecAggAck,
  type ServerToClientEvents,
  type UpdateResult,
} from '@flock/client-sdk/protocol';
import { busyRetryAfterMs } from '../boundary/busy.js';
import { clientAddress, ConnectionsPerAddress } from '../boundary/client-address.js';
import { limitSocketEvents, SocketEventLimiter } from '../boundary/event-rate-limit.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { DEVICE_PRESENCE, type DevicePresence } from '../devices/device-directory.js';
import { clientRoom, DEVICES_ROOM, LOCAL_DEVICES_ROOM, type FlockServer } from '../devices/device-sockets.js';
import { moduleLogger, runDetached } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ModelsService } from '../models/models.service.js';
import { EvaluationsService } from '../rounds/evaluations.service.js';
import { OfferedVersions } from '../rounds/offered-versions.js';
import { RoundsService } from '../rounds/rounds.service.js';
import { DeviceAdmission, newChallenge, verifyProof, type AdmittedDevice } from './device-identity.js';
import { HandshakeError } from './handshake-error.js';

const log = moduleLogger('clients');

/** A socket's state: set by the handshake (device), the connection (challenge) and the proof (clientId). */
interface DeviceSocketData {
  device: AdmittedDevice;
  /** The client address (client-address.ts: X-Forwarded-For only behind trusted proxies). */
  address: string;
  /** Gives back the address's connection slot; runs once, at whichever comes first of disconnect and transport close. */
  releaseSlot: () => void;
  challenge: Buffer | null;
  proofTimer: NodeJS.Timeout | null;
  /** Set once the device proved its key: only then does anything it sends reach a handler. */
  clientId: string;
  /** The versions this connection may report on, set when its welcome is sent. */
  offers?: OfferedVersions;
  /** performance.now() when the connection's latest engine.io packet arrived, before socket.io decoded it. */
  packetAt?: number;
}

type DeviceSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, Partial<DeviceSocketData>>;
/** A socket in a message handler: the proof gate (handleConnection) lets only proven sockets' events through. */
type ProvenSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, DeviceSocketData>;

/**
 * The device side of the wire protocol: admits sockets (handshake: credential and device key,
 * device-identity.ts), has them prove their key, and routes their events.
 */
@WebSocketGateway()
export class ClientsGateway implements OnGatewayInit<FlockServer>, OnGatewayConnection<DeviceSocket>, OnGatewayDisconnect<DeviceSocket> {
  /** Built with the gateway, so that unreadable enrolment keys stop the coordinator before it serves anyone. */
  private readonly admission: DeviceAdmission;
  private readonly connections: ConnectionsPerAddress;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    @Inject(DEVICE_PRESENCE) private readonly presence: DevicePresence,
    private readonly rounds: RoundsService,
    private readonly evaluations: EvaluationsService,
    private readonly models: ModelsService,
    private readonly metrics: MetricsService,
  ) {
    this.admission = new DeviceAdmission(config);
    this.connections = new ConnectionsPerAddress(config.maxConnectionsPerAddress);
  }

  afterInit(server: FlockServer): void {
    this.presence.attach(server);
    // Handshake check: a refused socket never connects and sees `connect_error` with the reason.
    server.use((socket: DeviceSocket, next) => {
      const address = clientAddress(socket.handshake.address, socket.handshake.headers['x-forwarded-for'], this.config.trustProxyHops);
      // Backpressure first: an overloaded coordinator tells arrivals when to come back.
      const retryAfterMs = this.config.busy ? busyRetryAfterMs(this.metrics.eventLoopDelay.snapshot().p99Ms, this.config.busy, Math.random()) : null;
      if (retryAfterMs !== null) {
        this.refused('coordinator_busy', { address });
        next(new HandshakeError('coordinator_busy', 'the coordinator is overloaded: come back after retryAfterMs', retryAfterMs));
        return;
      }
      // The cheap check next: a full address costs no signature or token verification.
      const release = this.connections.acquire(address);
      if (!release) {
        this.refused('too_many_connections', { address });
        next(new HandshakeError('too_many_connections', `this address already holds ${this.config.maxConnectionsPerAddress} connections`));
        return;
      }
      // A transport closed before or after the session opened gives its slot back (socket.io emits no disconnect for a socket that never connected).
      const releaseSlot = (): void => {
        socket.conn.off('close', releaseSlot);
        release();
      };
      socket.conn.once('close', releaseSlot);
      this.admission.admit(socket.handshake.auth).then(
        (device) => {
          Object.assign(socket.data, { device, address, releaseSlot });
          next();
        },
        (error: unknown) => {
          releaseSlot();
          const refusal = error instanceof HandshakeError ? error : new HandshakeError('unauthorized', 'the credential could not be checked');
          if (refusal !== error) log.error({ err: error }, 'handshake check failed');
          this.refused(refusal.code, { address });
          next(refusal);
        },
      );
    });
  }

  /** A connection is not a session yet: the device must first sign a fresh challenge with its key. */
  handleConnection(socket: DeviceSocket): void {
    const { device } = socket.data;
    if (!device) return; // refused by the handshake middleware
    if (this.config.eventLimits) this.limitEvents(socket, new SocketEventLimiter(this.config.eventLimits));
    // Stamped before socket.io's own listener decodes the packet: an upload's intake time counts its
    // decode from the arrival of its last part (the binary attachment) on.
    socket.conn.prependListener('data', () => {
      socket.data.packetAt = performance.now();
    });
    // Until the proof verifies, nothing the socket sends reaches a handler but its proof.
    socket.use(([event], next) => {
      if (socket.data.clientId !== undefined || event === ClientEvent.proof) next();
    });
    const challenge = newChallenge();
    socket.data.challenge = challenge;
    socket.data.proofTimer = setTimeout(() => this.refuseSession(socket, 'proof_timeout', 'no proof of the device key in time'), this.config.proofTimeoutMs);
    socket.emit(ServerEvent.challenge, { challenge });
  }

  handleDisconnect(socket: DeviceSocket): void {
    socket.data.releaseSlot?.();
    if (socket.data.proofTimer) clearTimeout(socket.data.proofTimer);
    const { clientId } = socket.data;
    if (!clientId) return;
    runDetached(
      log,
      `recording the disconnection of ${clientId}`,
      this.presence.disconnect(clientId, socket.id).then((forgotten) => forgotten && log.info({ clientId }, 'client disconnected')),
    );
  }

  /**
   * The device's answer to its one challenge. Only a proven socket is registered, and only it may
   * replace an older socket of the same device.
   */
  @SubscribeMessage(ClientEvent.proof)
  async onProof(@ConnectedSocket() socket: DeviceSocket, @MessageBody() body: unknown, @Ack() ack: ((result: ProofResult) => void) | undefined): Promise<void> {
    const answer = typeof ack === 'function' ? ack : () => undefined; // a proof sent without asking for an answer gets none
    const { device, challenge, clientId } = socket.data;
    if (clientId !== undefined) return answer({ accepted: true }); // already proven
    if (!device || !challenge) return;
    socket.data.challenge = null; // one attempt per connection
    if (!verifyProof(device, challenge, body))
      return this.refuseSession(socket, 'invalid_proof', 'the signature does not verify for this challenge and key', answer);
    clearTimeout(socket.data.proofTimer!);
    socket.data.proofTimer = null;
    socket.data.clientId = device.clientId;
    answer({ accepted: true });
    await this.openSession(socket as ProvenSocket);
  }

  /** Drops what a socket sends past its rate limits (counted) and disconnects it once it keeps on (counted, logged once). */
  private limitEvents(socket: DeviceSocket, limiter: SocketEventLimiter): void {
    limitSocketEvents(socket, limiter, ({ eventClass, reason, abusive }) => {
      this.metrics.socketEventsDroppedTotal.inc({ namespace: 'devices', event: eventClass, reason });
      if (!abusive) return;
      this.metrics.abusiveSocketsTotal.inc({ namespace: 'devices', reason: 'event_flood' });
      log.warn(
        { clientId: socket.data.clientId ?? socket.data.device?.clientId, address: socket.data.address },
        'socket disconnected: it kept sending past its event rate limits',
      );
    });
  }

  private async openSession(socket: ProvenSocket): Promise<void> {
    const { clientId, userKey } = socket.data.device;
    const replaced = await this.presence.connect(clientId, socket.id, { address: socket.data.address, userKey });
    if (replaced) this.presence.disconnectSocket(replaced);
    await socket.join([clientRoom(clientId), DEVICES_ROOM, LOCAL_DEVICES_ROOM]);
    const current = await this.models.current();
    socket.data.offers = new OfferedVersions(current?.version ?? null);
    socket.emit(ServerEvent.welcome, {
      clientId,
      protocolVersion: PROTOCOL_VERSION,
      currentModelVersion: current?.version ?? null,
      maxUploadBytes: this.config.maxUploadBytes,
    });
    log.info({ clientId }, 'client connected');
  }

  /** Ends a connection whose proof failed, telling the device why when it asked (the acknowledgement is sent before the socket closes). */
  private refuseSession(socket: DeviceSocket, reason: ConnectError, message: string, ack?: (result: ProofResult) => void): void {
    this.refused(reason, { clientId: socket.data.device?.clientId, address: socket.data.address ?? socket.handshake.address });
    ack?.({ accepted: false, reason, message });
    socket.disconnect(true);
  }

  private refused(reason: ConnectError, context: { clientId?: string; address: string }): void {
    this.metrics.connectionsRefusedTotal.inc({ reason });
    log.warn({ reason, ...context }, 'connection refused');
  }

  @SubscribeMessage(ClientEvent.conditions)
  onConditions(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): void {
    const report = conditionsReportSchema.safeParse(body);
    if (report.success) runDetached(log, 'recording conditions', this.presence.setConditions(socket.data.clientId, report.data));
    else log.warn({ clientId: socket.data.clientId }, 'ignored a malformed conditions report');
  }

  @SubscribeMessage(ClientEvent.fetchModel)
  async onFetchModel(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<ModelFetchResult> {
    const request = modelFetchRequestSchema.safeParse(body ?? {});
    if (!request.success) return { ok: false, error: `invalid request: ${request.error.issues[0]?.message}` };
    try {
      const version = request.data.version ?? (await this.models.current())?.version;
      if (version === undefined) return { ok: false, error: 'no global model version exists yet' };
      const { deltaFrom } = request.data;
      const delta = deltaFrom !== undefined ? await this.models.getDeltaPayload(version, deltaFrom) : null;
      const model = delta ?? (await this.models.getModelPayload(version));
      socket.data.offers?.recordFetch(version);
      this.metrics.downloadBytesTotal.inc({ kind: delta ? 'delta' : 'full' }, model.weights.byteLength);
      this.rounds.countModelServed(version, model.weights.byteLength);
      return { ok: true, model };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }

  @SubscribeMessage(ClientEvent.update)
  async onUpdate(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<UpdateResult> {
    const result = await this.rounds.handleUpload(socket.data.clientId, body, socket.data.packetAt);
    if (!result.accepted) {
      const named = uploadRoundSchema.safeParse(body);
      socket.emit(ServerEvent.updateRejected, { roundId: named.success ? named.data.roundId : null, reason: result.reason, message: result.message });
    }
    return result;
  }

  // Secure rounds (docs/SECURITY.md, "Secure aggregation"): the four phases' device messages, each acknowledged.
  @SubscribeMessage(ClientEvent.secAggAdvertise)
  onSecAggAdvertise(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<SecAggAck> {
    return this.rounds.handleSecureMessage(socket.data.clientId, ClientEvent.secAggAdvertise, body);
  }

  @SubscribeMessage(ClientEvent.secAggShares)
  onSecAggShares(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<SecAggAck> {
    return this.rounds.handleSecureMessage(socket.data.clientId, ClientEvent.secAggShares, body);
  }

  @SubscribeMessage(ClientEvent.secAggMasked)
  onSecAggMasked(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<SecAggAck> {
    return this.rounds.handleSecureMessage(socket.data.clientId, ClientEvent.secAggMasked, body);
  }

  @SubscribeMessage(ClientEvent.secAggReveal)
  onSecAggReveal(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<SecAggAck> {
    return this.rounds.handleSecureMessage(socket.data.clientId, ClientEvent.secAggReveal, body);
  }

  @SubscribeMessage(ClientEvent.abandon)
  onAbandon(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): void {
    this.rounds.handleAbandon(socket.data.clientId, body);
  }

  @SubscribeMessage(ClientEvent.evaluation)
  async onEvaluation(@ConnectedSocket() socket: ProvenSocket, @MessageBody() body: unknown): Promise<EvaluationReportResult> {
    return this.evaluations.handleReport(socket.data.clientId, body, socket.data.offers);
  }
}
