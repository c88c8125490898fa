import { Module } from '@nestjs/common';
import { ClientsModule } from '../clients/clients.module.js';
import { ModelsModule } from '../models/models.module.js';
import { RoundsModule } from '../rounds/rounds.module.js';
import { HealthController } from './health.controller.js';

/** Operator-facing endpoints that span features (health, client counts). Auth guards live here too. */
@Module({
  imports: [ModelsModule, ClientsModule, RoundsModule],
  controllers: [HealthController],
})
export class OperatorsModule {}
