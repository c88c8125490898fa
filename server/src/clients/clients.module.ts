import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module.js';
import { ModelsModule } from '../models/models.module.js';
import { RoundsModule } from '../rounds/rounds.module.js';
import { ClientsGateway } from './clients.gateway.js';

/**
 * Device connections: the socket.io gateway of the wire protocol. It feeds the device directory
 * (connections, conditions) and hands uploads, abandons and evaluations to the rounds module.
 */
@Module({
  imports: [DevicesModule, ModelsModule, RoundsModule],
  providers: [ClientsGateway],
})
export class ClientsModule {}
