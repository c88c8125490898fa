import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { ClusterLink } from './cluster-link.js';

/** DI token of this process's ClusterLink, null when FLOCK_REDIS_URL is unset (one process, nothing shared). */
export const CLUSTER_LINK = Symbol('CLUSTER_LINK');

/**
 * Cluster mode: FLOCK_REDIS_URL alone turns it on (the device directory, the round's partial
 * aggregates and its messages go through Redis). A leaf, global like the config.
 */
@Global()
@Module({
  providers: [
    {
      provide: CLUSTER_LINK,
      inject: [FLOCK_CONFIG],
      useFactory: async (config: FlockConfig): Promise<ClusterLink | null> =>
        config.redisUrl ? ClusterLink.connect({ redisUrl: config.redisUrl, prefix: config.redisPrefix, processTtlMs: config.processTtlMs }) : null,
    },
  ],
  exports: [CLUSTER_LINK],
})
export class ClusterModule implements OnApplicationShutdown {
  constructor(@Inject(CLUSTER_LINK) private readonly link: ClusterLink | null) {}

  async onApplicationShutdown(): Promise<void> {
    await this.link?.close();
  }
}
