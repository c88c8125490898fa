import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { evaluationReportSchema, type EvaluationRefusalReason, type EvaluationReportResult } from '@flock/client-sdk/protocol';
import { moduleLogger } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import { summarizeReports } from './evaluation-summary.js';
import type { OfferableVersion, OfferedVersions } from './offered-versions.js';
import { SummaryRefresher } from './summary-refresher.js';

const log = moduleLogger('evaluations');

/** Existing versions whose round is remembered (versions are immutable: a miss only costs a read). */
const KNOWN_VERSIONS = 64;

/**
 * Collects devices' local tests of newly committed global models (aggregate numbers only): the
 * hybrid pattern's "devices test the new model" step. A report is checked in order (schema and
 * bounds, the version exists, a round committed it, it was offered to this connection, first
 * report of this device on this version), stored, and the version's robust summary is recomputed
 * from the stored reports and shown on the round that committed it. Refusals are counted by reason.
 */
@Injectable()
export class EvaluationsService implements BeforeApplicationShutdown {
  private readonly known = new Map<number, OfferableVersion>();
  private readonly summaries = new SummaryRefresher((version, roundId) => this.refreshSummary(version, roundId));

  constructor(
    @Inject(STORAGE) private readonly storage: Storage,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * @param offers what this device's connection was offered; undefined before its welcome was sent.
   */
  async handleReport(clientId: string, payload: unknown, offers: OfferedVersions | undefined): Promise<EvaluationReportResult> {
    const parsed = evaluationReportSchema.safeParse(payload);
    if (!parsed.success) return this.refuse(clientId, 'malformed');
    const { modelVersion, ...numbers } = parsed.data;
    const version = await this.versionOf(modelVersion);
    if (!version) return this.refuse(clientId, 'unknown_version');
    if (version.roundId === null) return this.refuse(clientId, 'no_round');
    if (!offers?.offers(version)) return this.refuse(clientId, 'not_offered');
    if (!(await this.storage.insertEvaluationReport({ modelVersion, clientId, ...numbers }))) return this.refuse(clientId, 'duplicate_report');
    this.metrics.evaluationReportsTotal.inc({ result: 'accepted', reason: '' });
    this.summaries.reportStored(modelVersion, version.roundId);
    return { accepted: true };
  }

  /** Writes the summaries still due (stored reports are never lost; this keeps the rounds' copies current). */
  async flush(): Promise<void> {
    await this.summaries.flush();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.flush();
  }

  private refuse(clientId: string, reason: EvaluationRefusalReason): EvaluationReportResult {
    this.metrics.evaluationReportsTotal.inc({ result: 'refused', reason });
    log.debug({ clientId, reason }, 'refused an evaluation report');
    return { accepted: false, reason };
  }

  private async versionOf(version: number): Promise<OfferableVersion | null> {
    const cached = this.known.get(version);
    if (cached) return cached;
    const meta = await this.storage.getModelVersionMeta(version);
    if (!meta) return null; // not cached: reports for made-up versions evict nothing
    const found = { version, roundId: meta.roundId };
    this.known.set(version, found);
    if (this.known.size > KNOWN_VERSIONS) this.known.delete(this.known.keys().next().value!);
    return found;
  }

  private async refreshSummary(version: number, roundId: string): Promise<void> {
    const summary = summarizeReports(await this.storage.listEvaluationReports(version));
    if (summary) await this.storage.updateRound(roundId, { localEvaluation: summary });
  }
}
