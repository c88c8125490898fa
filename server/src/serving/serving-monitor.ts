import { Inject, Injectable } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { startRoundRequestSchema, type ServingAction, type ServingActionRecord, type ServingStatus } from '../contract/index.js';
import { moduleLogger } from '../logging/logger.js';
import { ModelsService } from '../models/models.service.js';
import { RoundsService } from '../rounds/rounds.service.js';
import { toRoundParams } from '../rounds/start-round.js';
import { jensenShannonDivergence, populationStabilityIndex } from './deviation.js';
import { ServedModels } from './served-models.js';
import { ServingMetrics } from './serving-metrics.js';
import { VersionStats } from './version-stats.js';

const log = moduleLogger('serving');

/** Versions whose statistics are kept. */
const KEPT_VERSIONS = 8;
/** Actions listed in the status. */
const KEPT_ACTIONS = 50;
/** Observed rows between two deviation checks. */
const CHECK_EVERY = 50;
const WEBHOOK_TIMEOUT_MS = 5000;

type Deviation = NonNullable<ServingStatus['deviation']>;

/**
 * Watches each new version on live traffic against the version served before it: the distribution
 * of predicted classes (PSI, Jensen-Shannon), disagreement with the previous version on a sample
 * of requests (shadow mode), accuracy on labelled feedback. A version crossing an operator's
 * threshold gets the configured actions once: alert (log, metric, webhook), rollback to the
 * previous version, or start a retraining round.
 */
@Injectable()
export class ServingMonitor {
  private readonly stats = new Map<number, VersionStats>();
  private current: number | null = null;
  private previous: number | null = null;
  /** Versions that already got their actions, and versions a rollback made (not judged against the one rolled back). */
  private readonly settled = new Set<number>();
  private readonly actions: ServingActionRecord[] = [];
  private sinceCheck = 0;
  private last: Deviation | null = null;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly served: ServedModels,
    private readonly models: ModelsService,
    private readonly rounds: RoundsService,
    private readonly metrics: ServingMetrics,
  ) {
    served.onVersionSwitch((next, previous) => {
      this.current = next;
      this.previous = previous;
      this.last = null;
      this.sinceCheck = 0;
      metrics.servedVersion.set(next);
    });
  }

  statsOf(version: number): VersionStats {
    let stats = this.stats.get(version);
    if (!stats) {
      stats = new VersionStats(version);
      this.stats.set(version, stats);
      if (this.stats.size > KEPT_VERSIONS) {
        const oldest = Math.min(...[...this.stats.keys()].filter((v) => v !== this.current && v !== this.previous));
        this.stats.delete(oldest);
      }
    }
    return stats;
  }

  /** Shadow mode: whether this request should also run on the previous version. */
  shadowVersion(): number | null {
    const fraction = this.config.serving.monitor.shadowFraction;
    if (fraction <= 0 || this.previous === null || this.current === null) return null;
    return Math.random() < fraction ? this.previous : null;
  }

  /** Rows a version predicted (classifiers: argmax and top probability per row). */
  observe(version: number, classes: Int32Array, confidences: Float32Array): void {
    const stats = this.statsOf(version);
    for (let i = 0; i < classes.length; i++) stats.observe(classes[i]!, confidences[i]!);
    this.sinceCheck += classes.length;
    if (version === this.current && this.sinceCheck >= CHECK_EVERY) {
      this.sinceCheck = 0;
      this.check();
    }
  }

  observeShadow(version: number, agreedRows: number, rows: number): void {
    const stats = this.statsOf(version);
    for (let i = 0; i < rows; i++) stats.observeShadow(i < agreedRows);
  }

  observeFeedback(version: number, correct: boolean): void {
    this.statsOf(version).observeFeedback(correct);
    if (version === this.current) this.check();
  }

  /** Computes the current version's deviation and acts on thresholds crossed. */
  check(): Deviation | null {
    const { current, previous } = this;
    if (current === null || previous === null) return null;
    const now = this.statsOf(current);
    const before = this.statsOf(previous);
    const { minSamples, psiThreshold, jsThreshold, disagreementThreshold, minAccuracy } = this.config.serving.monitor;
    const enough = now.predictions >= minSamples && before.predictions >= minSamples;
    const deviation: Deviation = {
      version: current,
      previousVersion: previous,
      psi: enough ? populationStabilityIndex(before.classCounts, now.classCounts) : null,
      js: enough ? jensenShannonDivergence(before.classCounts, now.classCounts) : null,
      disagreement: now.shadowCompared >= Math.min(minSamples, 50) ? now.disagreement : null,
    };
    this.last = deviation;
    if (deviation.psi !== null) this.metrics.deviation.set({ signal: 'psi' }, deviation.psi);
    if (deviation.js !== null) this.metrics.deviation.set({ signal: 'js' }, deviation.js);
    if (deviation.disagreement !== null) this.metrics.deviation.set({ signal: 'disagreement' }, deviation.disagreement);
    const accuracy = now.feedback >= Math.max(1, Math.ceil(minSamples / 10)) ? now.accuracy : null;
    if (accuracy !== null) this.metrics.feedbackAccuracy.set(accuracy);
    if (this.settled.has(current)) return deviation;
    const crossed =
      (psiThreshold !== null && deviation.psi !== null && deviation.psi > psiThreshold && { signal: 'psi', value: deviation.psi, threshold: psiThreshold }) ||
      (jsThreshold !== null && deviation.js !== null && deviation.js > jsThreshold && { signal: 'js', value: deviation.js, threshold: jsThreshold }) ||
      (disagreementThreshold !== null &&
        deviation.disagreement !== null &&
        deviation.disagreement > disagreementThreshold && { signal: 'disagreement', value: deviation.disagreement, threshold: disagreementThreshold }) ||
      (minAccuracy !== null && accuracy !== null && accuracy < minAccuracy && { signal: 'accuracy', value: accuracy, threshold: minAccuracy }) ||
      null;
    if (crossed) {
      this.settled.add(current);
      // act() records each action's failure itself.
      this.act(current, previous, crossed).catch(() => undefined);
    }
    return deviation;
  }

  private async act(version: number, previous: number, crossed: { signal: string; value: number; threshold: number }): Promise<void> {
    log.warn({ version, previous, ...crossed }, 'served version deviates from the previous one');
    for (const action of this.config.serving.monitor.actions) {
      let outcome: string;
      let result = 'ok';
      try {
        outcome = await this.run(action, version, previous, crossed);
      } catch (error) {
        outcome = `failed: ${error instanceof Error ? error.message : String(error)}`;
        result = 'failed';
      }
      this.metrics.actions.inc({ action, signal: crossed.signal, result });
      this.actions.push({ at: new Date().toISOString(), version, action, outcome, ...crossed });
      if (this.actions.length > KEPT_ACTIONS) this.actions.shift();
      log.warn({ version, action, outcome }, 'serving action taken');
    }
  }

  private async run(action: ServingAction, version: number, previous: number, crossed: { signal: string; value: number; threshold: number }): Promise<string> {
    switch (action) {
      case 'alert': {
        const url = this.config.serving.monitor.webhookUrl;
        if (!url) return 'alerted (log, metric, dashboard)';
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ event: 'flock.serving.deviation', version, previousVersion: previous, ...crossed }),
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
        });
        if (!response.ok) throw new Error(`webhook answered ${response.status}`);
        return `alerted (webhook answered ${response.status})`;
      }
      case 'rollback': {
        const meta = await this.models.rollback(previous);
        // The restored version is the previous one again: it is not judged against the one it replaces.
        this.settled.add(meta.version);
        await this.served.refresh();
        return `rolled back: version ${meta.version} has version ${previous}'s weights`;
      }
      case 'retrain': {
        const round = await this.rounds.start(toRoundParams(startRoundRequestSchema.parse({}), this.config.overSelection));
        return `started round ${round.id}`;
      }
    }
  }

  status(): Pick<ServingStatus, 'deviation' | 'actions'> & { versions: ReturnType<VersionStats['snapshot']>[] } {
    return {
      deviation: this.last,
      versions: [...this.stats.values()].sort((a, b) => b.version - a.version).map((stats) => stats.snapshot()),
      actions: [...this.actions].reverse(),
    };
  }
}
