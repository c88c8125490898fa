import { forwardRef, Module } from '@nestjs/common';
import { ClientsModule } from '../clients/clients.module.js';
import { ModelsModule } from '../models/models.module.js';
import { EvaluationsService } from './evaluations.service.js';
import { RoundsController } from './rounds.controller.js';
import { RoundsService } from './rounds.service.js';

/** The round engine, its operator API, and the collection of devices' local evaluations. */
@Module({
  imports: [ModelsModule, forwardRef(() => ClientsModule)],
  providers: [RoundsService, EvaluationsService],
  controllers: [RoundsController],
  exports: [RoundsService, EvaluationsService],
})
export class RoundsModule {}
