/** Simulation output: per-round JSON and CSV, and an SVG plot of test accuracy and loss against rounds. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { learningCurvesSvg } from './report-chart.js';
import { roundsToCsv } from './report-csv.js';

export { learningCurvesSvg, type CurveSeries } from './report-chart.js';
export { roundsToCsv } from './report-csv.js';

export interface RoundRow {
  round: number;
  /** Round outcome as the coordinator recorded it. */
  status: string;
  /** Global version committed by the round (null when it did not commit). */
  version: number | null;
  /** Test accuracy of the global model after the round (10,000 MNIST test images). */
  accuracy: number;
  loss: number;
  /** Clients selected for the round. */
  clients: number;
  accepted: number;
  rejected: number;
  dropped: number;
  /** Example-weighted mean local training loss of the accepted updates. */
  trainLoss: number | null;
  /** Bytes of weight data the coordinator received in uploads. */
  bytes: number;
  /** Bytes of the accepted uploads as sent (compressed under --compression), and of the round's base version sent to devices (whole or as deltas). */
  bytesUp: number;
  bytesDown: number;
  /** Uploads that came from Byzantine clients (`--byzantine`). */
  poisoned: number;
  /** The round's adaptive L2 bound on updates (null: off), and the accepted updates it scaled down or whose example count was clamped. */
  updateBound: number | null;
  clipped: number;
  clamped: number;
  /** L2 norm of the change the round applied. */
  updateNorm: number | null;
  /** Wall-clock seconds of the round, start request to commit. */
  seconds: number;
  /** Coordinator phases (from the round's transitions): selection + configuration, reporting, commit. */
  selectionMs: number | null;
  reportingMs: number | null;
  commitMs: number | null;
  /** Coordinator time decoding and validating the accepted uploads, and folding + finishing the aggregate. */
  validationMs: number;
  aggregationMs: number;
  /** Means over the round's uploads of what the SDK measured (see RoundTimings). */
  clientDownloadMs: number | null;
  clientTrainingMs: number | null;
  clientEncodeMs: number | null;
  clientUploadMs: number | null;
  /** Seconds the simulator spent fetching and testing the committed version on the main thread. */
  evalSeconds: number;
  /** Seconds since the first round started (includes evaluations). */
  elapsed: number;
}

export interface SimulationSummary {
  config: Record<string, unknown>;
  initialAccuracy: number;
  initialLoss: number;
  rounds: RoundRow[];
  finalAccuracy: number;
  bestAccuracy: number;
  /** First round whose accuracy reached the target, if a target was given and reached. */
  roundsToTarget: number | null;
  /** True when the run was interrupted (SIGINT) before its last round. */
  stopped: boolean;
  totalSeconds: number;
  setupSeconds: number;
  /** SDK errors the virtual clients reported, by code (e.g. upload_rejected). */
  clientErrors: Record<string, number>;
  backend: string;
}

/** Writes rounds.json (summary + rows), rounds.csv and curves.svg (accuracy and loss) into `dir`; returns their paths. */
export async function writeSimulationOutput(
  dir: string,
  summary: SimulationSummary,
  options: { title?: string; target?: number | null } = {},
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = { json: join(dir, 'rounds.json'), csv: join(dir, 'rounds.csv'), svg: join(dir, 'curves.svg') };
  const points = [
    { round: 0, accuracy: summary.initialAccuracy, loss: summary.initialLoss },
    ...summary.rounds.map((row) => ({ round: row.round, accuracy: row.accuracy, loss: row.loss })),
  ];
  await writeFile(files.json, `${JSON.stringify(summary, null, 2)}\n`);
  await writeFile(files.csv, roundsToCsv(summary.rounds));
  await writeFile(
    files.svg,
    await learningCurvesSvg([{ label: typeof summary.config.strategy === 'string' ? summary.config.strategy : 'global model', points }], options),
  );
  return [files.json, files.csv, files.svg];
}
