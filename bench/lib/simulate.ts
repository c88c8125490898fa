/**
 * Shared by the simulation benchmarks: runs `pnpm simulate` (the built CLI) for one configuration,
 * keeps its per-round results under bench/results, and reads them back for the reports.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CurveSeries, SimulationSummary } from '../../server/src/simulation/report.js';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PaperSetting {
  partition: 'iid' | 'shards' | 'dirichlet';
  learningRate?: number;
  seed?: string;
  fraction?: number;
}

/** The paper's setting (McMahan et al. 2017): K=100, C=0.1 unless given, E=1, B=10, an untrained 2NN, no local evaluation. */
export function paperArgs({ partition, learningRate = 0.1, seed = '1', fraction = 0.1 }: PaperSetting): string[] {
  return [
    '--clients',
    '100',
    '--fraction',
    String(fraction),
    '--epochs',
    '1',
    '--batch-size',
    '10',
    '--learning-rate',
    String(learningRate),
    '--partition',
    partition,
    '--seed',
    String(seed),
    '--local-eval',
    '0',
    '--no-progress',
  ];
}

/**
 * Runs the simulator with `args` (stdout/stderr shown live), then copies rounds.csv/json and the
 * accuracy plot to `<resultsDir>/<name>.{csv,json,svg}`.
 */
export function simulate(name: string, args: readonly string[], resultsDir: string): void {
  const out = join(root, 'bench', 'out', name);
  const argv = [join(root, 'server', 'dist', 'simulation', 'main.js'), ...args, '--out', out];
  console.log(`running ${name}: node ${argv.slice(1).join(' ')}`);
  const run = spawnSync(process.execPath, argv, { stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`${name}: the simulation exited with ${run.status}`);
  mkdirSync(resultsDir, { recursive: true });
  copyFileSync(join(out, 'rounds.csv'), join(resultsDir, `${name}.csv`));
  copyFileSync(join(out, 'rounds.json'), join(resultsDir, `${name}.json`));
  copyFileSync(join(out, 'curves.svg'), join(resultsDir, `${name}.svg`));
}

/** A stored result (rounds.json), or null when that configuration has not been run. */
export function readResult(resultsDir: string, name: string): SimulationSummary | null {
  const file = join(resultsDir, `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SimulationSummary) : null;
}

/** First round whose test accuracy reached `target`, or null. */
export function roundsTo(result: SimulationSummary, target: number): number | null {
  return result.rounds.find((row) => row.accuracy >= target)?.round ?? null;
}

export function bestAccuracy(result: SimulationSummary): number {
  return Math.max(result.initialAccuracy, ...result.rounds.map((row) => row.accuracy));
}

/** Test accuracy and loss vs round, starting at round 0 (the initial model), for learningCurvesSvg. */
export function curve(result: SimulationSummary): CurveSeries['points'] {
  return [
    { round: 0, accuracy: result.initialAccuracy, loss: result.initialLoss },
    ...result.rounds.map((row) => ({ round: row.round, accuracy: row.accuracy, loss: row.loss })),
  ];
}

export const percent = (value: number): string => `${(value * 100).toFixed(2)}%`;
