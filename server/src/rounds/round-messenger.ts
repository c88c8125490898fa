import { ServerEvent, totalValues, type RoundClosed, type SecureAggregationPlan, type TrainingPlan, type WeightSpec } from '@flock/client-sdk/protocol';
import type { DeviceDirectory } from '../devices/device-directory.js';
import type { UploadEndpoints } from '../uploads/upload-endpoints.js';
import { moduleLogger } from '../logging/logger.js';
import { planReportWindows, type PaceConfig } from './pace.js';

const log = moduleLogger('rounds');
/** Devices sent to per turn of the event loop (about 0.12 ms per send, from a CPU profile). */
const SEND_BATCH = 100;

/** What a round's participants are told when reporting starts. */
export interface RoundOpening {
  roundId: string;
  baseVersion: number;
  plan: TrainingPlan;
  weightSpecs: readonly WeightSpec[];
  deadlineAt: number;
  /** Coordinator processes folding the uploads (cluster mode; 1 otherwise): the paced rate is per process. */
  processes: number;
  /** A secure round: what devices need to know before they train (clip bound, threshold). */
  secureAggregation?: SecureAggregationPlan;
}

/**
 * What the round engine tells a round's participants, many at a time: each its plan (with its
 * report window when pace steering is on, pace.ts, and its HTTP upload endpoint and ticket when the
 * upload listener is up) and how the round ended. Sends go out in
 * batches, one per turn of the event loop, so that 10,000 of them never hold it for seconds; a
 * failed send is logged and does not stop the round.
 */
export class RoundMessenger {
  constructor(
    private readonly devices: DeviceDirectory,
    private readonly pace: PaceConfig | null,
    private readonly uploads: Pick<UploadEndpoints, 'endpointFor' | 'takes'> | null = null,
  ) {}

  async configure(participants: readonly string[], round: RoundOpening): Promise<void> {
    const { roundId, baseVersion, plan, weightSpecs, deadlineAt, processes } = round;
    const updateBytes = 4 * totalValues(weightSpecs.map((spec) => spec.shape));
    // Devices spread evenly over the processes (any load balancer does): each folds its share at the configured rate.
    const pace = this.pace && {
      ...this.pace,
      uploadsPerSecond: this.pace.uploadsPerSecond * processes,
      uploadBytesPerSecond: this.pace.uploadBytesPerSecond * processes,
    };
    const windows = pace ? planReportWindows(participants.length, updateBytes, Date.now(), deadlineAt, pace) : null;
    if (windows) log.info({ roundId, windows: windows.windows, uploadsPerSecond: windows.uploadsPerSecond }, 'report windows planned');
    const configuration = {
      roundId,
      modelVersion: baseVersion,
      plan,
      deadlineAt,
      ...(round.secureAggregation ? { secureAggregation: round.secureAggregation } : {}),
    };
    // A secure round's devices send masked inputs over the socket, never an upload; a small model's
    // upload costs less as one socket message than as a connection (bench/results/scale.md).
    const uploads = round.secureAggregation || !this.uploads?.takes(updateBytes) ? null : this.uploads;
    await this.sendToEach(participants, (clientId, index) => {
      const upload = uploads?.endpointFor(clientId, roundId, deadlineAt);
      return this.devices.sendTo(clientId, ServerEvent.configure, {
        ...configuration,
        ...(windows ? { reportWindow: windows.windowOf(index) } : {}),
        ...(upload ? { upload } : {}),
      });
    });
  }

  async closed(participants: readonly string[], closed: RoundClosed): Promise<void> {
    await this.sendToEach(participants, (clientId) => this.devices.sendTo(clientId, ServerEvent.roundClosed, closed));
  }

  private async sendToEach(clientIds: readonly string[], send: (clientId: string, index: number) => Promise<void>): Promise<void> {
    let failed = 0;
    let firstError: unknown = null;
    for (let start = 0; start < clientIds.length; start += SEND_BATCH) {
      if (start > 0) await new Promise((next) => setImmediate(next));
      const batch = clientIds.slice(start, start + SEND_BATCH);
      for (const result of await Promise.allSettled(batch.map((clientId, i) => send(clientId, start + i)))) {
        if (result.status === 'fulfilled') continue;
        failed++;
        firstError ??= result.reason;
      }
    }
    if (failed > 0) log.error({ failed, err: firstError }, 'sending to devices failed');
  }
}
