import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { ModelsModule } from '../models/models.module.js';
import { VersionAnnouncer } from './version-announcer.js';

/**
 * The coordinator's part of model-on-demand: announcing new versions to the event processors
 * (FLOCK_AMQP_URL; nothing without it). The processors and the client helper run outside the
 * coordinator (`flock processor`, `@flock/server/on-demand-client`). An edge: nothing imports it.
 */
@Module({
  imports: [EventsModule, ModelsModule],
  providers: [VersionAnnouncer],
})
export class OnDemandModule {}
