import { Global, Module, type DynamicModule } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from './config.js';

@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: FlockConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: FLOCK_CONFIG, useValue: config }], exports: [FLOCK_CONFIG] };
  }
}
