import { Module } from '@nestjs/common';
import { MulterModule } from '@nestjs/platform-express';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { EventsModule } from '../events/events.module.js';
import { ModelsController } from './models.controller.js';
import { PrivacyController } from './privacy.controller.js';
import { ModelsService } from './models.service.js';
import { TestSetEvaluationService } from './test-set-evaluation.service.js';

/**
 * The global model registry: ModelsService (exported for the rounds engine and the gateway), the
 * centralized test-set evaluation of new versions (it announces results on the event bus), and the
 * /api/models REST API. Needs STORAGE (StorageModule), FLOCK_CONFIG and MetricsService from global modules.
 */
@Module({
  imports: [
    EventsModule,
    // Model uploads (POST /api/models) are buffered in memory, bounded like device uploads.
    MulterModule.registerAsync({
      inject: [FLOCK_CONFIG],
      useFactory: (config: FlockConfig) => ({
        limits: { fileSize: config.maxUploadBytes, files: 2, fields: 4, fieldSize: 64 * 1024, parts: 8 },
      }),
    }),
  ],
  controllers: [ModelsController, PrivacyController],
  providers: [ModelsService, TestSetEvaluationService],
  exports: [ModelsService, TestSetEvaluationService],
})
export class ModelsModule {}
