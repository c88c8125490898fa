import { Inject, Injectable } from '@nestjs/common';
import type { AggregationResult } from '../aggregation/strategy.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { accountAfterRound } from '../privacy/ledger.js';
import { ModelsService } from '../models/models.service.js';
import { STORAGE, type ModelVersionRecord, type Storage } from '../storage/storage.js';
import type { ActiveRound } from './active-round.js';
import { checkCommit, commitRefusalMessage } from './commit-check.js';
import type { ReportingEnd } from './round-policy.js';

const log = moduleLogger('rounds');

/** A finished aggregate, ready to be stored as the round's new version. */
export interface PreparedCommit {
  result: AggregationResult;
  base: ModelVersionRecord;
}

export interface StoredCommit {
  version: number;
  parentVersion: number;
  /** The time stored as the round's end. */
  at: string;
}

/**
 * A round's commit: the aggregate becomes a new global version, stored with the round's end in
 * one transaction. The round engine decides when (and whether) to call write().
 */
@Injectable()
export class RoundCommitter {
  constructor(
    @Inject(STORAGE) private readonly storage: Storage,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly models: ModelsService,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * Finishes the aggregate, or says why the round cannot commit: the global model moved during the
   * round (rollback or registration), so its updates were against a stale base; or the new weights
   * fail the commit check (commit-check.ts: non-finite, or too far from the base), counted.
   */
  async prepare(round: ActiveRound): Promise<PreparedCommit | { refused: string }> {
    const { record } = round;
    const latest = await this.models.current();
    if (latest?.version !== record.baseVersion) {
      return {
        refused: `the global model moved to version ${latest?.version} during the round (rollback or registration); updates against version ${record.baseVersion} discarded`,
      };
    }
    const started = performance.now();
    const finished = await round.sink!.finish(record.params.minClients);
    if ('refused' in finished) return finished;
    const { result, tally } = finished;
    if (tally) {
      // Split over processes: what the partials hold is what commits (a dead process's updates are not in it).
      record.metrics.accepted = tally.accepted;
      record.metrics.totalExamples = tally.totalExamples;
      record.metrics.meanTrainLoss = tally.totalExamples > 0 ? tally.lossSum / tally.totalExamples : record.metrics.meanTrainLoss;
    }
    for (const warning of result.warnings ?? []) log.warn({ roundId: record.id, strategy: record.params.strategy }, warning);
    const finishSeconds = (performance.now() - started) / 1000;
    this.metrics.aggregationSeconds.observe({ phase: 'finish' }, finishSeconds);
    const { metrics } = record;
    metrics.aggregationMs += finishSeconds * 1000;
    metrics.updateNorm = result.updateNorm;
    metrics.durationMs = Date.now() - round.startedAt;
    const refusal = checkCommit(await this.models.getWeights(record.baseVersion), result.weights, this.config.maxModelChange);
    if (refusal) {
      this.metrics.commitsRefusedTotal.inc({ reason: refusal.reason });
      log.warn({ roundId: record.id, reason: refusal.reason, detail: refusal.message }, 'commit refused');
      return { refused: commitRefusalMessage(refusal) };
    }
    return { result, base: await this.models.get(record.baseVersion) };
  }

  /** Stores the new version and the round's end (committing -> committed, noted `why`) in one transaction. */
  async write(round: ActiveRound, { result, base }: PreparedCommit, why: ReportingEnd): Promise<StoredCommit> {
    const { record } = round;
    const { metrics } = record;
    const at = new Date().toISOString();
    const weights = new Uint8Array(result.weights.buffer, result.weights.byteOffset, result.weights.byteLength);
    const { model } = await this.storage.commitRound(
      record.id,
      {
        parentVersion: base.version,
        roundId: record.id,
        source: 'round',
        numParameters: result.weights.length,
        metrics: {
          clients: metrics.accepted,
          totalExamples: metrics.totalExamples,
          meanTrainLoss: metrics.meanTrainLoss,
          updateNorm: metrics.updateNorm,
          strategy: record.params.strategy,
        },
        topology: base.topology,
        weightSpecs: base.weightSpecs,
        strategyState: result.serverState,
        // The base is the newest version (prepare checked), so its account is the ledger this round adds to.
        privacy: accountAfterRound(base.privacy, base.privacy?.protected ?? false, record.params.differentialPrivacy, this.config.privacy.delta),
      },
      weights,
      { status: 'committed', metrics, endedAt: at },
      { roundId: record.id, from: 'committing', at, note: why },
      round.lease?.fence ?? null,
    );
    this.models.onVersionCommitted(model, { topology: base.topology, weightSpecs: base.weightSpecs, weights });
    this.metrics.modelVersion.set(model.version);
    if (model.privacy) this.metrics.recordPrivacy(model.privacy, this.config.privacy.delta);
    log.info({ roundId: record.id, version: model.version, accepted: metrics.accepted, updateNorm: metrics.updateNorm }, 'round committed');
    return { version: model.version, parentVersion: base.version, at };
  }
}
