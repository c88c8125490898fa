import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Channel, ChannelModel } from 'amqplib';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import type { VersionAnnouncement } from '../contract/index.js';
import { FlockEventBus } from '../events/event-bus.js';
import { moduleLogger } from '../logging/logger.js';
import { ModelsService } from '../models/models.service.js';
import { connectBroker } from './broker.js';

const log = moduleLogger('on-demand');

/** How often the newest version is looked up (rollbacks and registrations emit no event; other processes' commits). */
const POLL_MS = 1000;
/** Wait before connecting again after the broker went away. */
const RECONNECT_MS = 5000;

/**
 * With FLOCK_AMQP_URL set, the coordinator announces every new current version (a round's commit,
 * a rollback, a registration) on a fanout exchange, so that following event processors switch to
 * it without a restart. The broker being down never stops the coordinator: it connects again, and
 * announces the current version on every (re)connection. Processors also poll, so an announcement
 * lost meanwhile only delays a switch.
 */
@Injectable()
export class VersionAnnouncer implements OnModuleInit, OnApplicationShutdown {
  private connection: ChannelModel | null = null;
  private channel: Channel | null = null;
  private announced: number | null = null;
  private poller: NodeJS.Timeout | null = null;
  private reconnect: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly models: ModelsService,
    private readonly bus: FlockEventBus,
  ) {}

  onModuleInit(): void {
    if (!this.config.onDemand) return;
    this.bus.on('version.committed', ({ version }) => this.announce(version));
    this.poller = setInterval(() => {
      this.models.current().then(
        (meta) => meta && this.announce(meta.version),
        () => undefined,
      );
    }, POLL_MS);
    this.poller.unref();
    this.connect();
  }

  private connect(): void {
    const settings = this.config.onDemand!;
    this.reconnect = null;
    connectBroker(settings.amqpUrl)
      .then(async (connection) => {
        this.connection = connection;
        connection.on('error', (error: Error) => log.warn({ err: error }, 'broker connection error'));
        connection.on('close', () => this.lost());
        const channel = await connection.createChannel();
        channel.on('error', (error: Error) => log.warn({ err: error }, 'broker channel error'));
        await channel.assertExchange(settings.versionsExchange, 'fanout', { durable: true });
        this.channel = channel;
        log.info({ exchange: settings.versionsExchange }, 'announcing new versions to event processors');
        this.announced = null;
        const current = await this.models.current();
        if (current) this.announce(current.version);
      })
      .catch((error: unknown) => {
        log.warn({ err: error }, 'cannot reach the broker of model-on-demand; trying again');
        this.lost();
      });
  }

  private lost(): void {
    this.channel = null;
    this.connection = null;
    if (this.closed || this.reconnect) return;
    this.reconnect = setTimeout(() => this.connect(), RECONNECT_MS);
    this.reconnect.unref();
  }

  private announce(version: number): void {
    if (!this.channel || (this.announced !== null && version <= this.announced)) return;
    const announcement: VersionAnnouncement = { version };
    try {
      this.channel.publish(this.config.onDemand!.versionsExchange, '', Buffer.from(JSON.stringify(announcement)), { contentType: 'application/json' });
      this.announced = version;
      log.debug({ version }, 'version announced');
    } catch (error) {
      log.warn({ err: error }, 'announcing a version failed');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    if (this.reconnect) clearTimeout(this.reconnect);
    await this.connection?.close().catch(() => undefined);
  }
}
