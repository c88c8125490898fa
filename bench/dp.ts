// DP-FedAvg on MNIST (issue 13): test accuracy against ε, beside the same run without DP.
// 1,000 simulated devices of 60 examples each (all of MNIST's 60,000), IID and Dirichlet α = 0.5;
// each round samples every device with probability q (Poisson), clips its update to C, weighs it
// uniformly and adds Gaussian noise z·C to the sum (the coordinator's DP rounds, docs/PRIVACY.md);
// z is the accountant's for ε over the run's rounds at δ = 1e-5. The run without DP samples q·K
// devices per round (fixed size) and neither clips to C nor adds noise.
// Goal (Geyer et al. 2017): at least 92% test accuracy at ε = 8 with 1,000 devices.
// Writes bench/results/dp.md, bench/results/dp/<run>.{csv,json,svg} and bench/results/dp-<partition>.svg.
// Usage: pnpm bench:dp [--parallel N] [--workers W] [--only name,name] [--rounds T] [--report-only]
// Build first (pnpm build). Ten runs of 20 rounds: about an hour on 2 cores, ~8 minutes with 16.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { learningCurvesSvg, type SimulationSummary } from '../server/src/simulation/report.js';
import { curve, percent, readResult, root } from './lib/simulate.js';

const { values } = parseArgs({
  options: {
    'report-only': { type: 'boolean', default: false },
    only: { type: 'string' },
    parallel: { type: 'string', default: '1' },
    workers: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
  },
});

const CLIENTS = 1000;
const EXAMPLES = 60;
const DELTA = 1e-5;
const GOAL = { epsilon: 8, accuracy: 0.92 };
/** Shared by every run: q, C, local work and the server step (FedAvgM, as McMahan et al. 2018 use for DP-FedAvg). */
const SETTING = { clipNorm: 1, epochs: 2, batchSize: 10, learningRate: 0.1, strategy: 'fedavgm' };
/** q: the main grid samples 10% of the devices per round; more per round drowns the noise better (z·C / (q·K)) at more compute. */
const SAMPLING_RATES = [0.1, 0.3];
const MAIN_RATE = 0.1;
const EPSILONS = [1, 2, 4, 8];
const PARTITIONS = [
  { name: 'iid', label: 'IID', args: ['--partition', 'iid'] },
  { name: 'dirichlet', label: 'Dirichlet α = 0.5', args: ['--partition', 'dirichlet', '--alpha', '0.5'] },
] as const;

interface Run {
  name: string;
  samplingRate: number;
  partition: (typeof PARTITIONS)[number];
  epsilon: number | null;
}

const RUNS: Run[] = SAMPLING_RATES.flatMap((samplingRate) => {
  const q = samplingRate === MAIN_RATE ? '' : `-q${samplingRate}`;
  return PARTITIONS.flatMap((partition) => [
    { name: `${partition.name}${q}-nodp`, samplingRate, partition, epsilon: null },
    ...EPSILONS.map((epsilon) => ({ name: `${partition.name}${q}-eps${epsilon}`, samplingRate, partition, epsilon })),
  ]);
});
const baselineOf = (run: Run): string => run.name.replace(/-eps\d+$/, '-nodp');
const resultsDir = join(root, 'bench', 'results', 'dp');

function argsOf(run: Run): string[] {
  const { clipNorm, epochs, batchSize, learningRate, strategy } = SETTING;
  const { samplingRate } = run;
  return [
    ...['--clients', String(CLIENTS), '--examples-per-client', String(EXAMPLES), ...run.partition.args],
    ...['--epochs', String(epochs), '--batch-size', String(batchSize), '--learning-rate', String(learningRate), '--strategy', strategy],
    ...['--rounds', values.rounds, '--seed', values.seed, '--workers', values.workers, '--local-eval', '0', '--local-test', '0', '--no-progress'],
    ...(run.epsilon === null
      ? ['--fraction', String(samplingRate)]
      : ['--dp-epsilon', String(run.epsilon), '--dp-sampling-rate', String(samplingRate), '--dp-clip-norm', String(clipNorm), '--dp-delta', String(DELTA)]),
  ];
}

/** One simulation as a child process; its output is prefixed with the run's name. */
function simulate(run: Run): Promise<void> {
  const out = join(root, 'bench', 'out', 'dp', run.name);
  const argv = [join(root, 'server', 'dist', 'simulation', 'main.js'), ...argsOf(run), '--out', out];
  console.log(`running ${run.name}: node ${argv.slice(1).join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const prefix = (chunk: Buffer) => process.stdout.write(chunk.toString().replace(/^(?=.)/gm, `[${run.name}] `));
    child.stdout.on('data', prefix);
    child.stderr.on('data', prefix);
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${run.name}: the simulation exited with ${code}`));
      mkdirSync(resultsDir, { recursive: true });
      for (const [from, to] of [
        ['rounds.csv', 'csv'],
        ['rounds.json', 'json'],
        ['curves.svg', 'svg'],
      ])
        copyFileSync(join(out, from!), join(resultsDir, `${run.name}.${to}`));
      resolve();
    });
  });
}

async function runSimulations(): Promise<void> {
  const only = values.only ? new Set(values.only.split(',')) : null;
  // In the order --only names them (the goal's runs first when time is short).
  const queue = only ? [...only].map((name) => RUNS.find((run) => run.name === name)!).filter(Boolean) : RUNS.filter((run) => run.samplingRate === MAIN_RATE);
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    for (let run = queue.shift(); run; run = queue.shift()) await simulate(run).catch((error: Error) => failures.push(error.message));
  };
  await Promise.all(Array.from({ length: Math.max(1, Number(values.parallel)) }, worker));
  if (failures.length) console.error(`failed: ${failures.join('; ')}`);
}

// ---------------------------------------------------------------- report
type Config = { differentialPrivacy?: { noiseMultiplier: number; samplingRate: number; clipNorm: number } | null };

function row(run: Run, result: SimulationSummary, baseline: SimulationSummary | null): string {
  const last = result.rounds.at(-1)!;
  const dp = (result.config as Config).differentialPrivacy ?? null;
  const committed = result.rounds.filter((r) => r.status === 'committed').length;
  const gap = baseline && run.epsilon !== null ? ((baseline.rounds.at(-1)!.accuracy - last.accuracy) * 100).toFixed(2) : '–';
  const goal = run.epsilon === GOAL.epsilon ? (last.accuracy >= GOAL.accuracy ? 'yes' : '**no**') : '';
  const perRound = result.rounds.reduce((n, r) => n + r.accepted, 0) / Math.max(1, result.rounds.length);
  return (
    `| ${run.partition.label} | ${run.samplingRate} | ${run.epsilon ?? 'no DP'} | ${dp ? dp.noiseMultiplier.toFixed(3) : '–'} | ${committed} | ${perRound.toFixed(0)} | ` +
    `${percent(last.accuracy)} | ${gap} | ${goal} | ${result.totalSeconds.toFixed(0)} s | [csv](dp/${run.name}.csv) |`
  );
}

async function writeReport(): Promise<void> {
  const loaded = RUNS.flatMap((run) => {
    const result = readResult(resultsDir, run.name);
    return result ? [{ run, result }] : [];
  });
  const { clipNorm, epochs, batchSize, learningRate, strategy } = SETTING;
  const samplingRate = MAIN_RATE;
  const lines = [
    '# Differential privacy: DP-FedAvg on MNIST, accuracy against ε',
    '',
    `${CLIENTS.toLocaleString('en')} simulated devices (real SDK clients over socket.io) with ${EXAMPLES} MNIST examples each, an untrained 2NN, ` +
      `${values.rounds} rounds of ${strategy} (server momentum 0.9), E = ${epochs}, B = ${batchSize}, client lr ${learningRate}.`,
    `DP runs: Poisson sampling at q = ${samplingRate} (${samplingRate * CLIENTS} devices expected per round; rows with q = 0.3: 300), every update clipped to C = ${clipNorm} and weighted uniformly,`,
    `Gaussian noise z·C on the sum, divided by q·K; z is the accountant's noise multiplier for ε over ${values.rounds} rounds at δ = ${DELTA} (user-level DP, docs/PRIVACY.md).`,
    `The run without DP selects q·K = ${samplingRate * CLIENTS} devices per round with the coordinator's default bounded influence, no noise.`,
    `Goal (Geyer et al. 2017): at least ${GOAL.accuracy * 100}% at ε = ${GOAL.epsilon}.`,
    '',
    `Command: \`pnpm build && pnpm bench:dp --rounds ${values.rounds} --seed ${values.seed}\` (\`--parallel N --workers W\` to use more cores).`,
    'Selection and noise are not seeded (crypto randomness): two runs of one command differ.',
    '',
    '| data | q | ε (δ = 1e-5) | noise multiplier z | rounds committed | updates per round | final test accuracy | points below no DP (same q) | goal met | time | data |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...loaded.map(({ run, result }) => row(run, result, readResult(resultsDir, baselineOf(run)))),
    '',
  ];
  for (const partition of PARTITIONS) {
    const series = loaded
      .filter(({ run }) => run.partition === partition && run.samplingRate === MAIN_RATE)
      .map(({ run, result }) => ({ label: run.epsilon === null ? 'no DP' : `ε = ${run.epsilon}`, points: curve(result) }));
    if (series.length === 0) continue;
    writeFileSync(
      join(root, 'bench', 'results', `dp-${partition.name}.svg`),
      await learningCurvesSvg(series, { title: `DP-FedAvg, ${partition.label}`, target: GOAL.accuracy, yMin: 50 }),
    );
    lines.push(`![${partition.label}](dp-${partition.name}.svg)`, '');
  }
  writeFileSync(join(root, 'bench', 'results', 'dp.md'), lines.join('\n'));
  console.log(`wrote bench/results/dp.md (${loaded.length} of ${RUNS.length} runs)`);
}

if (!values['report-only']) await runSimulations();
await writeReport();
