import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { ModelsModule } from '../models/models.module.js';
import { RoundsModule } from '../rounds/rounds.module.js';
import { InferenceLogController } from './inference-log.controller.js';
import { InferenceLogService } from './inference-log.service.js';
import { ServedModels } from './served-models.js';
import { ServingMetrics } from './serving-metrics.js';
import { ServingMonitor } from './serving-monitor.js';
import { ServingService } from './serving.service.js';
import { V2Controller } from './v2.controller.js';

/**
 * The global model as a service: the Open Inference Protocol under /v2 (inference keys), worker
 * threads with dynamic batching and hot swap (ServedModels), the inference log, and the monitor of
 * each new version's deviation with its actions (rollback through ModelsService, retraining
 * through RoundsService). It exports ServedModels (the workers and their batcher) to precompute/,
 * the one module above it.
 */
@Module({
  imports: [EventsModule, ModelsModule, RoundsModule],
  controllers: [V2Controller, InferenceLogController],
  providers: [ServedModels, ServingMetrics, ServingMonitor, InferenceLogService, ServingService],
  exports: [ServedModels],
})
export class ServingModule {}
