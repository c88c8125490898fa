/**
 * Condition reporting: whether the device may train is the detectors' verdict plus whether the data
 * source has training examples. The app hears every change (`eligibilityChange`); the coordinator
 * hears what it was not told yet on the current connection (`client:conditions`).
 */
import type { ConditionsReport } from '../protocol/round-messages.js';
import type { IneligibilityReason } from '../protocol/reasons.js';
import type { ClientEligibility } from './client-types.js';
import type { ConditionMonitor } from './conditions.js';
import type { DataSource } from './data.js';
import { errorMessage, FlockClientError } from './errors.js';

export interface EligibilityListener {
  changed(eligibility: ClientEligibility): void;
  /** Sends the report to the coordinator; false when it could not (disconnected). */
  send(report: ConditionsReport): boolean;
  error(error: FlockClientError): void;
}

export class EligibilityReporter {
  private sequence = 0;
  private lastEligibility: string | null = null;
  private lastSent: string | null = null;

  constructor(
    private readonly monitor: ConditionMonitor,
    private readonly dataSource: DataSource,
    private readonly listener: EligibilityListener,
  ) {}

  /** The coordinator must hear the next report again (a new connection, or none). */
  forgetSent(): void {
    this.lastSent = null;
  }

  /** Recomputes eligibility and tells whoever has not heard it; a newer call supersedes this one. */
  async report(): Promise<void> {
    const sequence = ++this.sequence;
    const conditions = this.monitor.eligibility;
    const hasData = await this.hasTrainingData();
    if (sequence !== this.sequence) return; // a newer report is on its way
    const reasons: IneligibilityReason[] = [...conditions.reasons];
    if (!hasData) reasons.push('no_data');
    const eligibility: ClientEligibility = { eligible: reasons.length === 0, reasons, values: { ...conditions.values } };
    const eligibilityKey = JSON.stringify(eligibility);
    if (this.lastEligibility !== eligibilityKey) {
      this.lastEligibility = eligibilityKey;
      this.listener.changed(eligibility);
    }
    const report: ConditionsReport = { eligible: eligibility.eligible, reasons };
    const reportKey = JSON.stringify(report);
    if (this.lastSent !== reportKey && this.listener.send(report)) this.lastSent = reportKey;
  }

  /** True unless the data source counts zero training examples (a failing count is reported, not fatal). */
  private async hasTrainingData(): Promise<boolean> {
    try {
      const count = await this.dataSource.countTrainingExamples?.();
      return count === undefined || count > 0;
    } catch (error) {
      this.listener.error(new FlockClientError('data_source_failed', `counting training examples failed: ${errorMessage(error)}`, { cause: error }));
      return true;
    }
  }
}
