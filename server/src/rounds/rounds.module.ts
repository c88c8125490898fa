import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module.js';
import { EventsModule } from '../events/events.module.js';
import { ModelsModule } from '../models/models.module.js';
import { EvaluationsService } from './evaluations.service.js';
import { RoundCommitter } from './round-commit.js';
import { RoundsController } from './rounds.controller.js';
import { RoundsService } from './rounds.service.js';

/**
 * The round engine (a pure state machine driven by RoundsService), its operator API, and the
 * collection of devices' local evaluations. It reaches devices only through the DeviceDirectory port.
 */
@Module({
  imports: [ModelsModule, DevicesModule, EventsModule],
  providers: [RoundsService, RoundCommitter, EvaluationsService],
  controllers: [RoundsController],
  exports: [RoundsService, EvaluationsService],
})
export class RoundsModule {}
