import { Module } from '@nestjs/common';
import { CLUSTER_LINK } from '../cluster/cluster.module.js';
import type { ClusterLink } from '../cluster/cluster-link.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import { ClusterRounds } from './cluster-rounds.js';
import { DevicesModule } from '../devices/devices.module.js';
import { EventsModule } from '../events/events.module.js';
import { ModelsModule } from '../models/models.module.js';
import { EvaluationsService } from './evaluations.service.js';
import { RoundCommitter } from './round-commit.js';
import { RoundsController } from './rounds.controller.js';
import { RoundsService } from './rounds.service.js';
import { UploadEndpointsModule } from '../uploads/upload-endpoints.module.js';

/**
 * The round engine (a pure state machine driven by RoundsService), its operator API, and the
 * collection of devices' local evaluations. It reaches devices only through the DeviceDirectory port.
 */
@Module({
  imports: [ModelsModule, DevicesModule, EventsModule, UploadEndpointsModule],
  providers: [
    RoundsService,
    RoundCommitter,
    EvaluationsService,
    {
      provide: ClusterRounds.TOKEN,
      inject: [CLUSTER_LINK, FLOCK_CONFIG, STORAGE, MetricsService],
      useFactory: async (link: ClusterLink | null, config: FlockConfig, storage: Storage, metrics: MetricsService): Promise<ClusterRounds | null> => {
        if (!link) return null;
        const cluster = new ClusterRounds(link, config, storage, metrics);
        await cluster.start();
        return cluster;
      },
    },
  ],
  controllers: [RoundsController],
  exports: [RoundsService, EvaluationsService],
})
export class RoundsModule {}
