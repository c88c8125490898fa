import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module.js';
import { ModelsModule } from '../models/models.module.js';
import { RoundsModule } from '../rounds/rounds.module.js';
import { HealthController } from './health.controller.js';

/** Operator-facing endpoints that span features (health, client counts). (Auth guards live in auth/.) */
@Module({
  imports: [ModelsModule, DevicesModule, RoundsModule],
  controllers: [HealthController],
})
export class OperatorsModule {}
