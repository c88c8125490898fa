import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { CLUSTER_LINK } from '../cluster/cluster.module.js';
import type { ClusterLink } from '../cluster/cluster-link.js';
import { EventsModule } from '../events/events.module.js';
import { FlockEventBus } from '../events/event-bus.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { DEVICE_DIRECTORY, DEVICE_PRESENCE } from './device-directory.js';
import { InMemoryDeviceDirectory } from './in-memory-device-directory.js';
import { RedisDeviceDirectory } from './redis-device-directory.js';

/**
 * The device directory port and its implementations: in memory (one process), or in Redis when the
 * coordinator runs in cluster mode (FLOCK_REDIS_URL). A leaf: it needs only the event bus, the
 * global metrics and the cluster link, so the gateway (which feeds it) and the round engine (which
 * reads it) both import it without importing each other.
 */
@Module({
  imports: [EventsModule],
  providers: [
    {
      provide: DEVICE_DIRECTORY,
      inject: [CLUSTER_LINK, FlockEventBus, MetricsService],
      useFactory: async (link: ClusterLink | null, bus: FlockEventBus, metrics: MetricsService) => {
        if (!link) return new InMemoryDeviceDirectory(bus, metrics);
        const directory = new RedisDeviceDirectory(link, bus, metrics);
        await directory.start();
        return directory;
      },
    },
    { provide: DEVICE_PRESENCE, useExisting: DEVICE_DIRECTORY },
  ],
  exports: [DEVICE_DIRECTORY, DEVICE_PRESENCE],
})
export class DevicesModule implements OnApplicationShutdown {
  constructor(@Inject(DEVICE_DIRECTORY) private readonly directory: InMemoryDeviceDirectory | RedisDeviceDirectory) {}

  onApplicationShutdown(): void {
    if (this.directory instanceof RedisDeviceDirectory) this.directory.stop();
  }
}
