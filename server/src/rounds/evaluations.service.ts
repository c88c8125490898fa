import { Inject, Injectable } from '@nestjs/common';
import { evaluationReportSchema, type EvaluationReport } from '@flock/client-sdk/protocol';
import { moduleLogger } from '../logging/logger.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import type { LocalEvaluationSummary } from './round-types.js';

const log = moduleLogger('evaluations');

interface VersionEvaluations {
  roundId: string;
  reporters: Set<string>;
  summary: LocalEvaluationSummary;
  /** Sums behind the personal-model means, over reports that had a personal model. */
  personalExamples: number;
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
  private readonly byVersion = new Map<number, VersionEvaluations>();

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
    this.fold(evaluations, report);
    const round = await this.storage.getRound(evaluations.roundId);
    if (round) await this.storage.updateRound(round.id, { metrics: { ...round.metrics, localEvaluation: { ...evaluations.summary } } });
  }

  private fold(evaluations: VersionEvaluations, report: EvaluationReport): void {
    const summary = evaluations.summary;
    const n = report.numExamples;
    summary.globalAccuracy = foldMean(summary.globalAccuracy, summary.numExamples, report.globalAccuracy, n);
    summary.globalLoss = foldMean(summary.globalLoss, summary.numExamples, report.globalLoss, n);
    if (report.personalAccuracy !== null && report.personalLoss !== null) {
      summary.personalAccuracy = foldMean(summary.personalAccuracy ?? 0, evaluations.personalExamples, report.personalAccuracy, n);
      summary.personalLoss = foldMean(summary.personalLoss ?? 0, evaluations.personalExamples, report.personalLoss, n);
      evaluations.personalExamples += n;
    }
    summary.numExamples += n;
    summary.reports++;
    if (report.adopted) summary.adopted++;
  }

  /** Only versions produced by a round are shown per round. */
  private async evaluationsOf(version: number): Promise<VersionEvaluations | null> {
    const cached = this.byVersion.get(version);
    if (cached) return cached;
    const meta = await this.storage.getModelVersion(version);
    if (!meta?.roundId) return null;
    const round = await this.storage.getRound(meta.roundId);
    const evaluations: VersionEvaluations = {
      roundId: meta.roundId,
      reporters: new Set(),
      summary: round?.metrics.localEvaluation ?? {
        reports: 0,
        numExamples: 0,
        globalAccuracy: 0,
        globalLoss: 0,
        personalAccuracy: null,
        personalLoss: null,
        adopted: 0,
      },
      personalExamples: 0,
    };
    this.byVersion.set(version, evaluations);
    return evaluations;
  }
}
