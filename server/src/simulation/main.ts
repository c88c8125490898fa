#!/usr/bin/env node
/**
 * `pnpm simulate`: federated learning on MNIST with N virtual SDK clients against a real
 * coordinator. See `pnpm simulate --help`.
 *
 * The coordinator's modules read LOG_LEVEL when they are first imported, so this entry point only
 * parses arguments and then imports the simulator dynamically.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { PERSONALIZATION_METHODS, type PersonalizationMethod, type PersonalizationPlan } from '@flock/client-sdk/protocol';
import { LOG_LEVELS } from '../config/environment.js';
import {
  COMPRESSION_KINDS,
  DEFAULT_TOPK_FRACTION,
  KEY_AGREEMENTS,
  type Compression,
  type CompressionKind,
  type KeyAgreement,
} from '@flock/client-sdk/protocol';
import { ATTACK_CHOICES, type AttackChoice } from './byzantine.js';
import type { DifferentialPrivacyRequest, StrategyOptions } from '../contract/index.js';
import { noiseForEpsilon } from '../privacy/rdp.js';
import { INITIAL_MODEL_KINDS, planSimulation, type ExistingServer, type InitialModelKind, type SimulationOptions } from './options.js';
import type { RoundRow, SimulationSummary } from './report.js';

function number(name: string, check: (value: number) => boolean, what: string): (raw: string) => number {
  return (raw) => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || !check(value)) throw new InvalidArgumentError(`${name} must be ${what}`);
    return value;
  };
}
const positiveInt = (name: string) => number(name, (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
const nonNegativeInt = (name: string) => number(name, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
const positive = (name: string) => number(name, (v) => v > 0, 'a positive number');

interface CliOptions {
  clients: number;
  fraction: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  rounds: number;
  targetAccuracy?: number;
  strategy: string;
  strategyOptions: string;
  secureAggregation: boolean;
  secaggKeyAgreement?: KeyAgreement;
  partition: 'iid' | 'shards' | 'dirichlet';
  alpha: number;
  rotationClusters: number;
  quantitySkew: number;
  personalization?: PersonalizationMethod;
  personalLayers: string;
  dittoLambda: number;
  examplesPerClient?: number;
  seed: number;
  dropout: number;
  byzantine: number;
  attack: AttackChoice;
  defenses: 'on' | 'off';
  workers: number;
  init?: InitialModelKind;
  replaceModel: boolean;
  pretrainExamples: number;
  localTest: number;
  localEval: number;
  overSelection: number;
  minClients?: number;
  deadline: number;
  dpNoiseMultiplier?: number;
  dpEpsilon?: number;
  dpClipNorm: number;
  dpSamplingRate?: number;
  dpDelta: number;
  dpAdaptiveQuantile?: number;
  compression: CompressionKind;
  topkFraction?: number;
  server?: string;
  clientToken?: string;
  operatorToken?: string;
  out: string;
  logLevel: string;
  progress: boolean;
}

const program: Command = new Command()
  .name('flock-simulate')
  .description('FedAvg on real MNIST with virtual SDK clients (worker threads) against a real Flock coordinator.')
  .option('--clients <K>', 'number of virtual clients', positiveInt('--clients'), 100)
  .option(
    '--fraction <C>',
    'fraction of clients selected per round (m = max(round(C*K), 1))',
    number('--fraction', (v) => v >= 0 && v <= 1, 'in [0, 1]'),
    0.1,
  )
  .option('--epochs <E>', 'local epochs per round', positiveInt('--epochs'), 1)
  .option(
    '--batch-size <B>',
    'local batch size; "inf" = the whole local set as one batch (the paper\'s B = infinity)',
    (raw: string) => (raw === 'inf' || raw === 'infinity' ? 100_000 : positiveInt('--batch-size')(raw)),
    10,
  )
  .option('--learning-rate <lr>', 'client SGD learning rate', positive('--learning-rate'), 0.1)
  .option('--rounds <n>', 'maximum number of rounds', positiveInt('--rounds'), 20)
  .option('--target-accuracy <acc>', 'stop once the global test accuracy reaches this (0-1, or a percentage > 1)', positive('--target-accuracy'))
  .option('--strategy <name>', 'aggregation strategy (see docs/STRATEGIES.md)', 'fedavg')
  .option('--strategy-options <json>', 'strategy options as a JSON object', '{}')
  .option('--secure-aggregation', 'secure aggregation: the coordinator learns only the sum of each round (docs/SECURITY.md)', false)
  .addOption(
    new Option('--secagg-key-agreement <curve>', "the devices' key agreement in secure rounds (default P-256; X25519 where every device has it)").choices(
      KEY_AGREEMENTS,
    ),
  )
  .addOption(new Option('--partition <kind>', 'client data partition').choices(['iid', 'shards', 'dirichlet']).default('iid'))
  .option('--alpha <a>', 'Dirichlet concentration (--partition dirichlet)', positive('--alpha'), 0.5)
  .option(
    '--rotation-clusters <n>',
    "concept shift: client k's images rotated by 90 * (k mod n) degrees (IFCA's rotated MNIST: 4; 0 = off)",
    nonNegativeInt('--rotation-clusters'),
    0,
  )
  .option(
    '--quantity-skew <sigma>',
    'quantity skew of the iid partition: log-normal spread of client sizes (0 = equal)',
    number('--quantity-skew', (v) => v >= 0, '>= 0'),
    0,
  )
  .addOption(
    new Option('--personalization <method>', "the devices' personalization method, stated in every round's plan").choices([...PERSONALIZATION_METHODS]),
  )
  .option('--personal-layers <names>', 'comma-separated layer names that stay on the devices (--personalization personal-layers)', 'output')
  .option(
    '--ditto-lambda <x>',
    "Ditto's proximal weight (--personalization ditto)",
    number('--ditto-lambda', (v) => v >= 0, '>= 0'),
    0.1,
  )
  .option('--examples-per-client <n>', 'training examples per client (default 60000 / K)', positiveInt('--examples-per-client'))
  .option('--seed <n>', 'seed of the partition, the initial model, local test sets, dropouts and Byzantine clients', nonNegativeInt('--seed'), 1)
  .option(
    '--dropout <F>',
    'probability that a selected client becomes ineligible mid-training',
    number('--dropout', (v) => v >= 0 && v < 1, 'in [0, 1)'),
    0,
  )
  .option(
    '--byzantine <F>',
    'fraction of clients that send poisoned (but protocol-valid) updates',
    number('--byzantine', (v) => v >= 0 && v < 1, 'in [0, 1)'),
    0,
  )
  .addOption(
    new Option(
      '--attack <kind>',
      'what Byzantine clients do: Gaussian noise of large norm, -4x sign-flipped deltas, flipped labels, -10x deltas claiming 1e6 examples (scaling), ' +
        '-4x deltas from many identities behind one address (sybil), or the first three in turn (mixed)',
    )
      .choices(ATTACK_CHOICES)
      .default('mixed'),
  )
  .addOption(
    new Option('--defenses <on|off>', "the in-process coordinator's bounded-influence defaults (example cap, adaptive norm bound, per-address cap)")
      .choices(['on', 'off'])
      .default('on'),
  )
  .option('--workers <n>', 'worker threads hosting the clients', positiveInt('--workers'), 2)
  .addOption(
    new Option(
      '--init <kind>',
      "where training starts: an untrained 2NN (paper; default in process), the in-process coordinator's pre-trained default, " +
        "or the coordinator's current version (default with --server, whose live model is then left as it is)",
    ).choices(INITIAL_MODEL_KINDS),
  )
  .option('--replace-model', 'with --server and --init random: register the untrained 2NN as the live model of --server', false)
  .option('--pretrain-examples <n>', 'examples the coordinator pre-trains on (--init pretrained, in-process)', positiveInt('--pretrain-examples'), 6000)
  .option('--local-test <n>', 'held-out local test examples per client (from the MNIST test split, client label mix)', nonNegativeInt('--local-test'), 20)
  .option(
    '--local-eval <fraction>',
    'fraction of clients that test (and adopt) each published model locally; 0 = off',
    number('--local-eval', (v) => v >= 0 && v <= 1, 'in [0, 1]'),
    0.1,
  )
  .option(
    '--over-selection <f>',
    'selected = ceil(m * f)',
    number('--over-selection', (v) => v >= 1 && v <= 10, 'in [1, 10]'),
    1,
  )
  .option('--min-clients <n>', 'updates needed to commit (default m, or 1 with --dropout)', positiveInt('--min-clients'))
  .option('--deadline <seconds>', 'round reporting deadline', positive('--deadline'), 600)
  .option('--dp-noise-multiplier <z>', 'run DP-FedAvg rounds with this noise multiplier (docs/PRIVACY.md)', positive('--dp-noise-multiplier'))
  .option('--dp-epsilon <e>', 'run DP-FedAvg rounds with the noise multiplier that spends this ε over --rounds rounds at --dp-delta', positive('--dp-epsilon'))
  .option('--dp-clip-norm <C>', 'DP rounds: the L2 norm every update is clipped to', positive('--dp-clip-norm'), 1)
  .option(
    '--dp-sampling-rate <q>',
    'DP rounds: the probability each client is sampled (Poisson; default --fraction)',
    number('--dp-sampling-rate', (v) => v > 0 && v <= 1, 'in (0, 1]'),
  )
  .option(
    '--dp-delta <d>',
    "DP rounds: the δ ε is reported at (the in-process coordinator's FLOCK_DP_DELTA)",
    number('--dp-delta', (v) => v > 0 && v < 1, 'in (0, 1)'),
    1e-5,
  )
  .option(
    '--dp-adaptive-quantile <γ>',
    'DP rounds: adaptive clipping (Andrew et al. 2021) towards this quantile of update norms; --dp-clip-norm is the first C',
    number('--dp-adaptive-quantile', (v) => v > 0 && v < 1, 'in (0, 1)'),
  )
  .addOption(
    new Option('--compression <kind>', 'how devices compress uploads (int8, or top-k with error feedback); with one, downloads are int8 deltas')
      .choices(COMPRESSION_KINDS)
      .default('none'),
  )
  .option(
    '--topk-fraction <F>',
    `share of the delta's values a top-k upload carries (--compression topk; default ${DEFAULT_TOPK_FRACTION})`,
    number('--topk-fraction', (v) => v > 0 && v <= 1, 'in (0, 1]'),
  )
  .option('--server <url>', 'use this coordinator instead of an in-process one')
  .option('--client-token <token>', 'client token of --server (or FLOCK_CLIENT_TOKEN)')
  .option('--operator-token <token>', 'operator token of --server (or FLOCK_OPERATOR_TOKEN)')
  .option('--out <dir>', 'output directory', './sim-out')
  .addOption(new Option('--log-level <level>', 'coordinator log level').choices(LOG_LEVELS).default('warn'))
  .option('--no-progress', 'print one line per round instead of a progress bar');

/** The strategy options, the coordinator to use and the target, from the command line (a usage error exits). */
function resolveArguments(cli: CliOptions): {
  strategyOptions: StrategyOptions;
  server: ExistingServer | null;
  target: number | null;
  differentialPrivacy: DifferentialPrivacyRequest | null;
  compression: Compression;
} {
  let strategyOptions: StrategyOptions = {};
  try {
    const parsed: unknown = JSON.parse(cli.strategyOptions);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    strategyOptions = parsed; // the coordinator checks the keys and values
  } catch (error) {
    program.error(`--strategy-options must be a JSON object: ${(error as Error).message}`);
  }
  let server: ExistingServer | null = null;
  if (cli.server) {
    const clientToken = cli.clientToken ?? process.env.FLOCK_CLIENT_TOKEN;
    const operatorToken = cli.operatorToken ?? process.env.FLOCK_OPERATOR_TOKEN;
    if (!clientToken || !operatorToken) program.error('--server needs --client-token and --operator-token (or FLOCK_CLIENT_TOKEN / FLOCK_OPERATOR_TOKEN)');
    server = { url: cli.server.replace(/\/+$/, ''), clientToken, operatorToken };
  }
  const target = cli.targetAccuracy === undefined ? null : cli.targetAccuracy > 1 ? cli.targetAccuracy / 100 : cli.targetAccuracy;
  if (cli.topkFraction !== undefined && cli.compression !== 'topk') program.error('--topk-fraction applies to --compression topk only');
  if (cli.secaggKeyAgreement !== undefined && !cli.secureAggregation) program.error('--secagg-key-agreement applies to --secure-aggregation only');
  const compression: Compression =
    cli.compression === 'topk' ? { kind: 'topk', topkFraction: cli.topkFraction ?? DEFAULT_TOPK_FRACTION } : { kind: cli.compression };
  return { strategyOptions, server, target, compression, differentialPrivacy: differentialPrivacyOf(cli) };
}

/** DP rounds from --dp-noise-multiplier, or from --dp-epsilon through the accountant (the noise that spends ε over --rounds); with --secure-aggregation the devices add the noise. */
function differentialPrivacyOf(cli: CliOptions): DifferentialPrivacyRequest | null {
  if (cli.dpNoiseMultiplier !== undefined && cli.dpEpsilon !== undefined) program.error('give --dp-noise-multiplier or --dp-epsilon, not both');
  const samplingRate = cli.dpSamplingRate ?? cli.fraction;
  if (cli.dpNoiseMultiplier === undefined && cli.dpEpsilon === undefined) {
    if (cli.dpSamplingRate !== undefined) program.error('--dp-sampling-rate needs --dp-noise-multiplier or --dp-epsilon');
    return null;
  }
  if (!(samplingRate > 0)) program.error('DP rounds need a positive sampling rate (--dp-sampling-rate or --fraction)');
  const noiseMultiplier =
    cli.dpNoiseMultiplier ?? noiseForEpsilon({ epsilon: cli.dpEpsilon!, delta: cli.dpDelta, samplingRate, rounds: cli.rounds }, { tolerance: 1e-4 });
  const adaptive = cli.dpAdaptiveQuantile === undefined ? {} : { adaptiveClipping: { targetQuantile: cli.dpAdaptiveQuantile } };
  // With secure aggregation the coordinator sees only the sum: the devices add the noise.
  const noise = cli.secureAggregation ? 'distributed' : 'central';
  return { noiseMultiplier, clipNorm: cli.dpClipNorm, samplingRate, noise, ...adaptive };
}

interface Progress {
  log(message: string): void;
  onRound(row: RoundRow): void;
  stop(): void;
}

/** A progress bar on a terminal (unless --no-progress), else one line per round, on stderr. */
function progressReporter(cli: CliOptions, cliProgress: typeof import('cli-progress')): Progress {
  const bar =
    cli.progress && process.stderr.isTTY === true
      ? new cliProgress.SingleBar(
          { format: 'round {value}/{total} [{bar}] acc {acc}% | {secs}s/round | {eta_formatted} left', hideCursor: true, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let barStarted = false;
  return {
    log: (message) => {
      if (bar) bar.updateETA();
      process.stderr.write(`${bar ? '\n' : ''}[simulate] ${message}\n`);
    },
    onRound: (row) => {
      const acc = (row.accuracy * 100).toFixed(2);
      if (!bar) {
        const poisoned = row.poisoned > 0 ? ` (${row.poisoned} poisoned)` : '';
        process.stderr.write(
          `round ${row.round}/${cli.rounds} ${row.status}: test accuracy ${acc}%, loss ${row.loss.toFixed(4)}, ` +
            `${row.accepted}/${row.clients} accepted${poisoned}, ${row.dropped} dropped, ${row.seconds.toFixed(1)} s\n`,
        );
        return;
      }
      if (!barStarted) {
        bar.start(cli.rounds, 0, { acc: '-', secs: '-' });
        barStarted = true;
      }
      bar.update(row.round, { acc, secs: row.seconds.toFixed(1) });
    },
    stop: () => bar?.stop(),
  };
}

/** Ctrl-C: cancel the round in flight, stop, and still write what was measured; twice: exit now. */
function interruptSignal(): AbortSignal {
  const stop = new AbortController();
  process.on('SIGINT', () => {
    if (stop.signal.aborted) process.exit(130);
    process.stderr.write('\n[simulate] interrupted: finishing up (Ctrl-C again to exit at once)\n');
    stop.abort();
  });
  return stop.signal;
}

function simulationOptions(
  cli: CliOptions,
  resolved: ReturnType<typeof resolveArguments>,
  progress: Progress,
  signal: AbortSignal,
): Partial<SimulationOptions> {
  return {
    clients: cli.clients,
    fraction: cli.fraction,
    epochs: cli.epochs,
    batchSize: cli.batchSize,
    learningRate: cli.learningRate,
    rounds: cli.rounds,
    targetAccuracy: resolved.target,
    strategy: cli.strategy,
    strategyOptions: resolved.strategyOptions,
    secureAggregation: cli.secureAggregation ? (cli.secaggKeyAgreement ?? 'P-256') : null,
    partition: cli.partition,
    alpha: cli.alpha,
    rotationClusters: cli.rotationClusters,
    quantitySkew: cli.quantitySkew,
    personalization: personalizationOf(cli),
    examplesPerClient: cli.examplesPerClient ?? null,
    seed: cli.seed,
    dropout: cli.dropout,
    byzantine: cli.byzantine,
    attack: cli.attack,
    defenses: cli.defenses === 'on',
    workers: cli.workers,
    init: cli.init ?? null,
    replaceModel: cli.replaceModel,
    pretrainExamples: cli.pretrainExamples,
    localTestExamples: cli.localTest,
    localEvaluation: cli.localEval,
    overSelection: cli.overSelection,
    minClients: cli.minClients ?? null,
    deadlineSeconds: cli.deadline,
    compression: resolved.compression,
    server: resolved.server,
    differentialPrivacy: resolved.differentialPrivacy,
    dpDelta: cli.dpDelta,
    onRound: (row) => progress.onRound(row),
    onLog: (message) => progress.log(message),
    signal,
  };
}

/** The plan's personalization from the flags; null without --personalization. */
function personalizationOf(cli: CliOptions): PersonalizationPlan | null {
  switch (cli.personalization) {
    case undefined:
      return null;
    case 'personal-layers':
      return {
        method: 'personal-layers',
        personalLayers: cli.personalLayers
          .split(',')
          .map((name) => name.trim())
          .filter(Boolean),
      };
    case 'ditto':
      return { method: 'ditto', dittoLambda: cli.dittoLambda };
    default:
      return { method: cli.personalization };
  }
}

function printSummary(summary: SimulationSummary, target: number | null, files: string[]): void {
  const last = summary.rounds.at(-1);
  const percent = (value: number): string => `${(value * 100).toFixed(2)}%`;
  process.stdout.write(
    `${summary.rounds.length} round(s): final test accuracy ${percent(summary.finalAccuracy)} ` +
      `(best ${percent(summary.bestAccuracy)}, initial ${percent(summary.initialAccuracy)})` +
      `${target !== null ? `, target ${percent(target)} ${summary.roundsToTarget !== null ? `reached at round ${summary.roundsToTarget}` : 'not reached'}` : ''}\n` +
      `time: ${summary.totalSeconds.toFixed(1)} s total (setup ${summary.setupSeconds.toFixed(1)} s, rounds ${last ? last.elapsed.toFixed(1) : '0'} s)\n` +
      `wrote ${files.join(', ')}\n`,
  );
}

async function main(): Promise<void> {
  program.parse();
  const cli = program.opts<CliOptions>();
  process.env.LOG_LEVEL = cli.logLevel;
  const resolved = resolveArguments(cli);
  try {
    // Where training starts is decided before anything loads: --init random with --server, without --replace-model, is a usage error.
    planSimulation({ init: cli.init ?? null, replaceModel: cli.replaceModel, server: resolved.server });
  } catch (error) {
    if (error instanceof RangeError) program.error(error.message);
    throw error;
  }
  const [{ runSimulation }, { writeSimulationOutput }, cliProgress] = await Promise.all([
    import('./simulator.js'),
    import('./report.js'),
    import('cli-progress'),
  ]);
  const progress = progressReporter(cli, cliProgress);
  const summary = await runSimulation(simulationOptions(cli, resolved, progress, interruptSignal())).finally(() => progress.stop());
  const title = `${cli.strategy} 2NN, ${cli.partition}, K=${cli.clients}, C=${cli.fraction}, E=${cli.epochs}, B=${cli.batchSize >= 100_000 ? 'inf' : cli.batchSize}, lr=${cli.learningRate}`;
  const files = await writeSimulationOutput(cli.out, summary, { title, target: resolved.target });
  printSummary(summary, resolved.target, files);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`simulate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
