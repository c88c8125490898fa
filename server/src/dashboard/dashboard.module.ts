import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module.js';
import { EventsModule } from '../events/events.module.js';
import { ModelsModule } from '../models/models.module.js';
import { RoundsModule } from '../rounds/rounds.module.js';
import { DashboardController } from './dashboard.controller.js';
import { DashboardGateway } from './dashboard.gateway.js';
import { DashboardService } from './dashboard.service.js';

/** The operator dashboard: the page at /dashboard and its live feed on the `/operators` socket.io namespace. */
@Module({
  imports: [DevicesModule, EventsModule, RoundsModule, ModelsModule],
  controllers: [DashboardController],
  providers: [DashboardService, DashboardGateway],
})
export class DashboardModule {}
