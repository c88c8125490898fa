import { Module, type DynamicModule } from '@nestjs/common';
import { ClusterModule } from './cluster/cluster.module.js';
import { ClientsModule } from './clients/clients.module.js';
import { ConfigModule } from './config/config.module.js';
import { DashboardModule } from './dashboard/dashboard.module.js';
import { DevicesModule } from './devices/devices.module.js';
import type { FlockConfig } from './config/config.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { ModelsModule } from './models/models.module.js';
import { OnDemandModule } from './on-demand/on-demand.module.js';
import { OperatorsModule } from './operators/operators.module.js';
import { PrecomputeModule } from './precompute/precompute.module.js';
import { RoundsModule } from './rounds/rounds.module.js';
import { ServingModule } from './serving/serving.module.js';
import { StorageModule } from './storage/storage.module.js';
import { UploadsModule } from './uploads/uploads.module.js';

@Module({})
export class AppModule {
  static forRoot(config: FlockConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        StorageModule,
        ClusterModule,
        MetricsModule,
        DevicesModule,
        ModelsModule,
        RoundsModule,
        ClientsModule,
        UploadsModule,
        OperatorsModule,
        DashboardModule,
        ServingModule,
        PrecomputeModule,
        OnDemandModule,
      ],
    };
  }
}
