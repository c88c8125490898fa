import { forwardRef, Module } from '@nestjs/common';
import { ModelsModule } from '../models/models.module.js';
import { RoundsModule } from '../rounds/rounds.module.js';
import { ClientRegistry } from './client-registry.js';
import { ClientsGateway } from './clients.gateway.js';

/** Device connections: the socket.io gateway of the wire protocol and the registry of connected devices. */
@Module({
  imports: [ModelsModule, forwardRef(() => RoundsModule)],
  providers: [ClientRegistry, ClientsGateway],
  exports: [ClientRegistry],
})
export class ClientsModule {}
