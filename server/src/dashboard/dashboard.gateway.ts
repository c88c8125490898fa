import { Inject, type OnApplicationShutdown } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection, type OnGatewayInit } from '@nestjs/websockets';
import type { Namespace, Socket } from 'socket.io';
import { tokenMatches } from '../auth/auth.js';
import { clientAddress } from '../boundary/client-address.js';
import { limitSocketEvents, SocketEventLimiter } from '../boundary/event-rate-limit.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { operatorSocketAuthSchema } from '../contract/operators.js';
import { DEVICE_DIRECTORY, type DeviceDirectory } from '../devices/device-directory.js';
import { FlockEventBus } from '../events/event-bus.js';
import type { FlockEventName } from '../events/flock-events.js';
import { moduleLogger, runDetached } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import {
  DASHBOARD_NAMESPACE,
  DASHBOARD_STATE_EVENT,
  type DashboardClientToServerEvents,
  type DashboardServerToClientEvents,
  type DashboardState,
} from './dashboard-state.js';
import { DashboardService, fingerprint } from './dashboard.service.js';

const log = moduleLogger('dashboard');

/** Bus events after which operators get a fresh snapshot. */
const PUSHED_ON: readonly FlockEventName[] = ['round.changed', 'device.available', 'device.disconnected', 'version.committed', 'version.evaluated'];

/** At most one pushed snapshot per this many milliseconds (4/s). */
export const PUSH_INTERVAL_MS = 250;
/** While operators are connected: client counts are compared this often (eligibility changes emit no event)... */
const COUNTS_POLL_MS = 500;
/** ...and the whole snapshot this often (local evaluations, rollbacks and registrations emit none either). */
const FULL_POLL_MS = 2000;

type OperatorsNamespace = Namespace<DashboardClientToServerEvents, DashboardServerToClientEvents>;
type OperatorSocket = Socket<DashboardClientToServerEvents, DashboardServerToClientEvents>;

/**
 * Live push to the operator dashboard on the `/operators` namespace. The handshake must carry the
 * operator token (`auth: { token }`). Each operator gets a `dashboard:state` snapshot on connect and
 * again after every change of clients, rounds or models, throttled to PUSH_INTERVAL_MS.
 */
@WebSocketGateway({ namespace: DASHBOARD_NAMESPACE })
export class DashboardGateway implements OnGatewayInit<OperatorsNamespace>, OnGatewayConnection<OperatorSocket>, OnApplicationShutdown {
  private namespace: OperatorsNamespace | null = null;
  private pushTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private lastPushAt = 0;
  private lastFullCheckAt = 0;
  private pushing = false;
  private dirty = false;
  private lastCounts = '';
  private lastFingerprint = '';
  private readonly onChange = (): void => this.schedule();

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly dashboard: DashboardService,
    @Inject(DEVICE_DIRECTORY) private readonly devices: DeviceDirectory,
    private readonly bus: FlockEventBus,
    private readonly metrics: MetricsService,
  ) {}

  afterInit(namespace: OperatorsNamespace): void {
    this.namespace = namespace;
    namespace.use((socket, next) => {
      const auth = operatorSocketAuthSchema.safeParse(socket.handshake.auth);
      if (auth.success && tokenMatches(auth.data.token, this.config.operatorToken)) {
        next();
        return;
      }
      log.warn({ address: this.address(socket) }, 'operator connection refused');
      next(Object.assign(new Error('unauthorized'), { data: { code: 'unauthorized', detail: 'a valid operator token is required' } }));
    });
    for (const event of PUSHED_ON) this.bus.on(event, this.onChange);
  }

  async handleConnection(socket: OperatorSocket): Promise<void> {
    log.info({ address: this.address(socket) }, 'operator connected');
    this.limitEvents(socket);
    this.startPolling();
    try {
      const state = await this.dashboard.snapshot();
      this.lastFingerprint = fingerprint(state);
      this.lastCounts = JSON.stringify(state.clients);
      socket.emit(DASHBOARD_STATE_EVENT, state);
    } catch (error) {
      log.error({ err: error }, 'failed to build the dashboard snapshot');
    }
  }

  private address(socket: OperatorSocket): string {
    return clientAddress(socket.handshake.address, socket.handshake.headers['x-forwarded-for'], this.config.trustProxyHops);
  }

  /** Operators send nothing on this namespace: every event is dropped and counted, and a socket that keeps sending is closed. */
  private limitEvents(socket: OperatorSocket): void {
    if (!this.config.eventLimits) return;
    limitSocketEvents(socket, new SocketEventLimiter(this.config.eventLimits), ({ eventClass, reason, abusive }) => {
      this.metrics.socketEventsDroppedTotal.inc({ namespace: 'operators', event: eventClass, reason });
      if (!abusive) return;
      this.metrics.abusiveSocketsTotal.inc({ namespace: 'operators', reason: 'event_flood' });
      log.warn({ address: this.address(socket) }, 'operator socket disconnected: it kept sending events');
    });
  }

  onApplicationShutdown(): void {
    for (const event of PUSHED_ON) this.bus.off(event, this.onChange);
    this.stopPolling();
    if (this.pushTimer) clearTimeout(this.pushTimer);
    this.pushTimer = null;
  }

  private operatorsConnected(): boolean {
    return (this.namespace?.sockets.size ?? 0) > 0;
  }

  /** Pushes a snapshot soon: at once if the last push is older than PUSH_INTERVAL_MS, else when it is. */
  private schedule(): void {
    if (!this.operatorsConnected() || this.pushTimer) return;
    const wait = Math.max(0, this.lastPushAt + PUSH_INTERVAL_MS - Date.now());
    this.pushTimer = setTimeout(() => {
      this.pushTimer = null;
      runDetached(log, 'dashboard push', this.push());
    }, wait);
  }

  private async push(known?: DashboardState): Promise<void> {
    if (this.pushing) {
      this.dirty = true;
      return;
    }
    this.pushing = true;
    this.lastPushAt = Date.now();
    try {
      const state = known ?? (await this.dashboard.snapshot());
      this.lastFingerprint = fingerprint(state);
      this.lastCounts = JSON.stringify(state.clients);
      // Local only: with a Redis adapter each coordinator node pushes its own view to its own operators.
      this.namespace?.local.emit(DASHBOARD_STATE_EVENT, state);
    } catch (error) {
      log.error({ err: error }, 'failed to push the dashboard snapshot');
    } finally {
      this.pushing = false;
      if (this.dirty) {
        this.dirty = false;
        this.schedule();
      }
    }
  }

  private startPolling(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => runDetached(log, 'dashboard poll', this.poll()), COUNTS_POLL_MS);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  /** Catches what emits no event: eligibility flips, new connections, local evaluations, rollbacks. */
  private async poll(): Promise<void> {
    if (!this.operatorsConnected()) {
      this.stopPolling();
      return;
    }
    if (JSON.stringify(await this.devices.counts()) !== this.lastCounts) {
      this.schedule();
      return;
    }
    if (Date.now() - this.lastFullCheckAt < FULL_POLL_MS || this.pushing || this.pushTimer) return;
    this.lastFullCheckAt = Date.now();
    try {
      const state = await this.dashboard.snapshot();
      if (fingerprint(state) !== this.lastFingerprint && !this.pushTimer) await this.push(state);
    } catch (error) {
      log.error({ err: error }, 'failed to poll the dashboard snapshot');
    }
  }
}
