/** What the load test's driver (main.ts) and its device generator processes (generator.ts) tell each other over IPC. */

export type DriverMessage =
  /** Connect `count` devices; device i (of all generators, `first + i`) goes to `urls[(first + i) % urls.length]`. */
  | { type: 'connect'; urls: string[]; first: number; count: number; generator: number; concurrency: number }
  /** The round is over: report once every upload sent has its acknowledgement, or after `graceMs`. */
  | { type: 'report'; graceMs: number }
  | { type: 'close' };

export type GeneratorMessage =
  { type: 'connected'; connected: number; failed: number; firstError: string | null; seconds: number } | { type: 'round'; stats: RoundStats };

/** One generator's view of one round. */
export interface RoundStats {
  configured: number;
  /** Devices that were configured with a report window. */
  paced: number;
  uploadsSent: number;
  accepted: number;
  rejected: number;
  /** Uploads whose acknowledgement never came (timed out, or the socket closed first). */
  lostAcks: number;
  /** Epoch ms of the first upload sent and the last acknowledgement received (null: none). */
  firstSendAt: number | null;
  lastAckAt: number | null;
  /** Sockets the coordinator (or the network) closed, since the devices connected. */
  disconnects: number;
  /** Rejection reasons and counts. */
  rejections: Record<string, number>;
}
