import { Inject } from '@nestjs/common';
import {
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
  handshakeAuthSchema,
  modelFetchRequestSchema,
  type ClientToServerEvents,
  type ConnectError,
  type EvaluationReportResult,
  type ModelFetchResult,
  type ServerToClientEvents,
  type UpdateResult,
} from '@flock/client-sdk/protocol';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { DEVICE_PRESENCE, type DevicePresence } from '../devices/device-directory.js';
import { clientRoom, type FlockServer } from '../devices/device-sockets.js';
import { moduleLogger } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { ModelsService } from '../models/models.service.js';
import { tokenMatches } from '../auth/auth.js';
import { EvaluationsService } from '../rounds/evaluations.service.js';
import { OfferedVersions } from '../rounds/offered-versions.js';
import { RoundsService } from '../rounds/rounds.service.js';

const log = moduleLogger('clients');

/** `offers`: the versions this connection may report on, set when its welcome is sent. */
type DeviceSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, { clientId: string; offers?: OfferedVersions }>;

class HandshakeError extends Error {
  /** socket.io sends `data` to the client with the connect_error. */
  readonly data: { code: ConnectError; detail: string };
  constructor(readonly code: ConnectError, detail: string) {
    super(code);
    this.data = { code, detail };
  }
}

/** The device side of the wire protocol: authenticates sockets and routes their events. */
@WebSocketGateway()
export class ClientsGateway implements OnGatewayInit<FlockServer>, OnGatewayConnection<DeviceSocket>, OnGatewayDisconnect<DeviceSocket> {
  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    @Inject(DEVICE_PRESENCE) private readonly presence: DevicePresence,
    private readonly rounds: RoundsService,
    private readonly evaluations: EvaluationsService,
    private readonly models: ModelsService,
    private readonly metrics: MetricsService,
  ) {}

  afterInit(server: FlockServer): void {
    this.presence.attach(server);
    // Handshake check: a refused socket never connects and sees `connect_error` with the reason.
    server.use((socket, next) => {
      const auth = handshakeAuthSchema.safeParse(socket.handshake.auth);
      let error: HandshakeError | null = null;
      if (!auth.success) {
        // Which refusal to give depends on the token alone; it is checked as `unknown` (any JSON value may arrive).
        const token: unknown = (socket.handshake.auth as Record<string, unknown> | null | undefined)?.token;
        const tokenOk = tokenMatches(token, this.config.clientToken);
        error = tokenOk
          ? new HandshakeError('invalid_client_id', auth.error.issues[0]?.message ?? 'invalid handshake')
          : new HandshakeError('unauthorized', 'a valid client token is required');
      } else if (!tokenMatches(auth.data.token, this.config.clientToken)) {
        error = new HandshakeError('unauthorized', 'a valid client token is required');
      } else if (auth.data.protocolVersion !== PROTOCOL_VERSION) {
        error = new HandshakeError('protocol_mismatch', `coordinator speaks protocol ${PROTOCOL_VERSION}, client ${auth.data.protocolVersion}`);
      }
      if (error) {
        this.metrics.connectionsRefusedTotal.inc({ reason: error.code });
        log.warn({ reason: error.code, address: socket.handshake.address }, 'connection refused');
        next(error);
        return;
      }
      (socket as DeviceSocket).data.clientId = auth.data!.clientId;
      next();
    });
  }

  async handleConnection(socket: DeviceSocket): Promise<void> {
    const { clientId } = socket.data;
    if (!clientId) return; // refused by the handshake middleware
    const replaced = this.presence.connect(clientId, socket.id);
    if (replaced) this.presence.disconnectSocket(replaced);
    await socket.join(clientRoom(clientId));
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

  handleDisconnect(socket: DeviceSocket): void {
    const { clientId } = socket.data;
    if (clientId && this.presence.disconnect(clientId, socket.id)) log.info({ clientId }, 'client disconnected');
  }

  @SubscribeMessage(ClientEvent.conditions)
  onConditions(@ConnectedSocket() socket: DeviceSocket, @MessageBody() body: unknown): void {
    const report = conditionsReportSchema.safeParse(body);
    if (report.success) this.presence.setConditions(socket.data.clientId, report.data);
    else log.warn({ clientId: socket.data.clientId }, 'ignored a malformed conditions report');
  }

  @SubscribeMessage(ClientEvent.fetchModel)
  async onFetchModel(@ConnectedSocket() socket: DeviceSocket, @MessageBody() body: unknown): Promise<ModelFetchResult> {
    const request = modelFetchRequestSchema.safeParse(body ?? {});
    if (!request.success) return { ok: false, error: `invalid request: ${request.error.issues[0]?.message}` };
    try {
      const version = request.data.version ?? (await this.models.current())?.version;
      if (version === undefined) return { ok: false, error: 'no global model version exists yet' };
      const model = await this.models.getModelPayload(version);
      socket.data.offers?.recordFetch(version);
      return { ok: true, model };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }

  @SubscribeMessage(ClientEvent.update)
  async onUpdate(@ConnectedSocket() socket: DeviceSocket, @MessageBody() body: unknown): Promise<UpdateResult> {
    const result = await this.rounds.handleUpload(socket.data.clientId, body);
    if (!result.accepted) {
      const roundId = typeof (body as { roundId?: unknown } | null)?.roundId === 'string' ? (body as { roundId: string }).roundId : null;
      socket.emit(ServerEvent.updateRejected, { roundId, reason: result.reason, message: result.message });
    }
    return result;
  }

  @SubscribeMessage(ClientEvent.abandon)
  onAbandon(@ConnectedSocket() socket: DeviceSocket, @MessageBody() body: unknown): void {
    this.rounds.handleAbandon(socket.data.clientId, body);
  }

  @SubscribeMessage(ClientEvent.evaluation)
  async onEvaluation(@ConnectedSocket() socket: DeviceSocket, @MessageBody() body: unknown): Promise<EvaluationReportResult> {
    return this.evaluations.handleReport(socket.data.clientId, body, socket.data.offers);
  }
}
