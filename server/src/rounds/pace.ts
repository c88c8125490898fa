/**
 * Pace steering (Bonawitz et al. 2019, "Towards Federated Learning at Scale"): the coordinator
 * tells each selected device when to upload, so that a round's uploads arrive at the rate it can
 * fold instead of all at once. Pure: the round engine sends each participant its window in
 * `round:configure`.
 */
import type { ReportWindow } from '@flock/client-sdk/protocol';

export interface PaceConfig {
  /** Uploads per second one coordinator folds with its event loop still responsive (the bound for small models). */
  uploadsPerSecond: number;
  /** Upload bytes per second it decodes, validates and folds (the bound for large models). */
  uploadBytesPerSecond: number;
  /** Width of one report window; the devices of a window upload at random moments inside it. */
  windowMs: number;
}

/**
 * The share of the reporting time windows may fill: the rest is left for devices whose training
 * outlasts their window (they upload at once when done).
 */
export const PACED_SHARE_OF_DEADLINE = 0.75;

export interface PacePlan {
  /** Uploads per second the windows aim at (above the configured rate only when the deadline leaves too little time). */
  uploadsPerSecond: number;
  windows: number;
  /** The window of the participant at this position of the roster. */
  windowOf(index: number): ReportWindow;
}

/** Windows for `participants` uploads of `updateBytes` each, from `startAt` (epoch ms) on, ending before the deadline. */
export function planReportWindows(participants: number, updateBytes: number, startAt: number, deadlineAt: number, pace: PaceConfig): PacePlan {
  const rate = Math.max(1e-3, Math.min(pace.uploadsPerSecond, pace.uploadBytesPerSecond / Math.max(1, updateBytes)));
  const wantedMs = (Math.max(1, participants) / rate) * 1000;
  const usableMs = Math.max(0, deadlineAt - startAt) * PACED_SHARE_OF_DEADLINE;
  // A small round needs less than one window: its uploads spread over the time they need at the rate.
  const windowMs = Math.max(1, Math.min(pace.windowMs, wantedMs, usableMs));
  const windows = Math.max(1, Math.min(Math.ceil(wantedMs / windowMs), Math.floor(usableMs / windowMs)));
  const perWindow = Math.ceil(Math.max(1, participants) / windows);
  return {
    uploadsPerSecond: (perWindow * 1000) / windowMs,
    windows,
    windowOf: (index) => {
      const notBefore = startAt + Math.min(windows - 1, Math.floor(index / perWindow)) * windowMs;
      return { notBefore, notAfter: notBefore + windowMs };
    },
  };
}
