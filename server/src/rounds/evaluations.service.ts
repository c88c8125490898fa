import { Inject, Injectable } from '@nestjs/common';
import { evaluationReportSchema, type EvaluationReport } from '@flock/client-sdk/protocol';
import { moduleLogger } from '../logging/logger.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import type { LocalEvaluationSummary } from '../contract/index.js';

const log = moduleLogger('evaluations');

/** Versions whose reports are tracked in memory; devices test the newest, older ones reload from storage. */
const TRACKED_VERSIONS = 32;

interface VersionEvaluations {
  roundId: string;
  /**
   * Devices that reported this version since the coordinator started (kept in memory only: client
   * ids are not stored with the round). The SDK reports a version once, so a restart rarely matters.
   */
  reporters: Set<string>;
  summary: LocalEvaluationSummary;
  /** Writes of the summary, in order (a report's write must not overtake an earlier one's). */
  persisted: Promise<void>;
}

/** Weighted running mean: mean of n values + x with weight w. */
function foldMean(mean: number, total: number, value: number, weight: number): number {
  return (mean * total + value * weight) / (total + weight);
}

/**
 * Collects devices' local tests of newly committed global models (aggregate numbers only) and
 * shows them on the round that produced the version: the hybrid pattern's "devices test the new
 * model" step.
 */
@Injectable()
export class EvaluationsService {
  /** Promises, so that concurrent first reports of a version share one load. */
  private readonly byVersion = new Map<number, Promise<VersionEvaluations | null>>();

  constructor(@Inject(STORAGE) private readonly storage: Storage) {}

  async handleReport(clientId: string, payload: unknown): Promise<void> {
    const parsed = evaluationReportSchema.safeParse(payload);
    if (!parsed.success) {
      log.warn({ clientId, issue: parsed.error.issues[0]?.message }, 'ignored a malformed evaluation report');
      return;
    }
    const report = parsed.data;
    const evaluations = await this.evaluationsOf(report.modelVersion);
    if (!evaluations || evaluations.reporters.has(clientId)) return;
    evaluations.reporters.add(clientId);
    fold(evaluations.summary, report);
    const snapshot = { ...evaluations.summary };
    const write = evaluations.persisted.then(async () => {
      const round = await this.storage.getRound(evaluations.roundId);
      if (round) await this.storage.updateRound(round.id, { metrics: { ...round.metrics, localEvaluation: snapshot } });
    });
    evaluations.persisted = write.catch(() => undefined);
    await write;
  }

  /** Only versions produced by a round are shown per round. */
  private evaluationsOf(version: number): Promise<VersionEvaluations | null> {
    let loading = this.byVersion.get(version);
    if (!loading) {
      loading = this.load(version);
      this.byVersion.set(version, loading);
      // A failed load is retried by the next report; the oldest tracked version makes room.
      loading.catch(() => this.byVersion.delete(version));
      if (this.byVersion.size > TRACKED_VERSIONS) this.byVersion.delete(this.byVersion.keys().next().value!);
    }
    return loading;
  }

  private async load(version: number): Promise<VersionEvaluations | null> {
    const meta = await this.storage.getModelVersion(version);
    if (!meta?.roundId) return null;
    const round = await this.storage.getRound(meta.roundId);
    const stored = round?.metrics.localEvaluation;
    return {
      roundId: meta.roundId,
      reporters: new Set(),
      summary: stored
        ? // Summaries stored before personalNumExamples existed: every report then had a personal model.
          { ...stored, personalNumExamples: stored.personalNumExamples ?? (stored.personalAccuracy === null ? 0 : stored.numExamples) }
        : { reports: 0, numExamples: 0, globalAccuracy: 0, globalLoss: 0, personalAccuracy: null, personalLoss: null, personalNumExamples: 0, adopted: 0 },
      persisted: Promise.resolve(),
    };
  }
}

function fold(summary: LocalEvaluationSummary, report: EvaluationReport): void {
  const n = report.numExamples;
  summary.globalAccuracy = foldMean(summary.globalAccuracy, summary.numExamples, report.globalAccuracy, n);
  summary.globalLoss = foldMean(summary.globalLoss, summary.numExamples, report.globalLoss, n);
  if (report.personalAccuracy !== null && report.personalLoss !== null) {
    const personalExamples = summary.personalNumExamples ?? 0;
    summary.personalAccuracy = foldMean(summary.personalAccuracy ?? 0, personalExamples, report.personalAccuracy, n);
    summary.personalLoss = foldMean(summary.personalLoss ?? 0, personalExamples, report.personalLoss, n);
    summary.personalNumExamples = personalExamples + n;
  }
  summary.numExamples += n;
  summary.reports++;
  if (report.adopted) summary.adopted++;
}
