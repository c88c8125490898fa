import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { ModelsModule } from '../models/models.module.js';
import { ServingModule } from '../serving/serving.module.js';
import { PrecomputeController } from './precompute.controller.js';
import { PrecomputeService } from './precompute.service.js';

/**
 * Precompute: datasets predicted ahead of time on the serving module's inference workers, stored
 * keyed by (dataset, key, version), read back by key. An edge above serving: nothing imports it.
 */
@Module({
  imports: [EventsModule, ModelsModule, ServingModule],
  controllers: [PrecomputeController],
  providers: [PrecomputeService],
})
export class PrecomputeModule {}
