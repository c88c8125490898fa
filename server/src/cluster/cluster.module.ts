import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger } from '../logging/logger.js';
import { isPostgresUrl } from '../storage/storage.module.js';
import { ClusterLink } from './cluster-link.js';

const log = moduleLogger('cluster');

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
      useFactory: async (config: FlockConfig): Promise<ClusterLink | null> => {
        if (!config.redisUrl) return null;
        if (!isPostgresUrl(config.databaseUrl))
          log.warn(
            'cluster mode on SQLite: processes share devices through Redis but not rounds or models; use FLOCK_DATABASE_URL=postgres://... for several processes',
          );
        return ClusterLink.connect({ redisUrl: config.redisUrl, prefix: config.redisPrefix, processTtlMs: config.processTtlMs });
      },
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
