import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { DEVICE_DIRECTORY, DEVICE_PRESENCE } from './device-directory.js';
import { InMemoryDeviceDirectory } from './in-memory-device-directory.js';

/**
 * The device directory port and its in-memory implementation. A leaf: it needs only the event
 * bus and the global metrics, so the gateway (which feeds it) and the round engine (which reads it)
 * both import it without importing each other.
 */
@Module({
  imports: [EventsModule],
  providers: [
    InMemoryDeviceDirectory,
    { provide: DEVICE_DIRECTORY, useExisting: InMemoryDeviceDirectory },
    { provide: DEVICE_PRESENCE, useExisting: InMemoryDeviceDirectory },
  ],
  exports: [DEVICE_DIRECTORY, DEVICE_PRESENCE],
})
export class DevicesModule {}
