// Does personalization serve users better than the global model, by how much, for how many, and
// under which heterogeneity? (Issue 18; Wang et al. 2019, Ditto, FedPer/FedRep, IFCA.)
// MNIST 2NN, K devices, FedAvg with C = 0.1, under Dirichlet label skew, shards, and rotation
// clusters. For each method (none = the global model, fine-tune, Ditto, personal layers) and each
// checkpoint round, every device tests on its held-out local split (never trained on): the mean,
// median and 10th percentile of personal accuracy across devices, the share of devices where it
// beats the global model, and the mean gain. Under rotation clusters, a model trained centrally on
// each cluster's pooled data is the reference.
//
// In process, with the SDK's own training code (trainModel, dittoUpdate, trainOnlyLayers,
// evaluateModel) and the simulator's partitions: the federation is a plain weighted mean of
// updates here, so that 100 devices x 200 rounds x 3 heterogeneities fit on a workstation; the
// real socket path of each method is tested in server/test/integration/personalization.test.ts.
//
// Usage: pnpm bench:personalization [--heterogeneity dirichlet,shards,rotated] [--rounds 10,50,200]
//   [--clients 100] [--batch-size 10] [--learning-rate 0.1] [--personal-epochs 1] [--ditto-lambda 0.1]
//   [--local-test 50] [--central-epochs 5] [--seed 1] [--tag NAME]
// The full grid (the defaults) takes hours on 2 cores; bench/results/personalization.md says what ran.
//
// Settings grid: `--personal-epochs 1,3,5 --ditto-lambda 0.05,0.1,0.5` runs the federation once
// (one Ditto federation per lambda) and, at each checkpoint, derives every device's personal model
// for every setting: each method trains once up to the largest epoch count and is tested after
// each listed count (plain SGD keeps no optimizer state between epochs, so E = 3 tested on the way
// to 5 is E = 3 in one call). With several epoch counts, the checkpoint's personal step is not
// carried to the next checkpoint (which count's would it be?): Ditto's models and the heads then
// advance only in the rounds that select their device. The report chooses, per method, the
// setting with the highest mean local accuracy at the first (short-horizon) checkpoint and shows
// it at the later ones beside every other setting.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import {
  dittoUpdate,
  evaluateModel,
  readWeights,
  resolveLoss,
  storedModelFromLayersModel,
  trainModel,
  trainOnlyLayers,
  type LocalTrainingPlan,
  type WeightSpec,
} from '../client-sdk/src/index.js';
import { initNodeBackend } from '../client-sdk/src/node/backend.js';
import { build2NN } from '../server/src/models/default-model.js';
import { hashInts, mulberry32 } from '../server/src/simulation/partition.js';
import { distribution, distributionSvg, type DistributionStats } from './lib/device-distribution.js';
import { benchDevices, HETEROGENEITIES, type BenchDevice, type Heterogeneity } from './lib/personal-devices.js';
import { root } from './lib/simulate.js';

const METHODS = ['none', 'fine-tune', 'ditto', 'personal-layers'] as const;
type Method = (typeof METHODS)[number];
const PERSONAL_LAYERS = ['output'];
/** Tensors of the 2NN in weight order: hidden1 kernel/bias, hidden2 kernel/bias, output kernel/bias. */
const SHARED_TENSORS = 4;

const { values } = parseArgs({
  options: {
    heterogeneity: { type: 'string', default: HETEROGENEITIES.join(',') },
    rounds: { type: 'string', default: '10,50,200' },
    clients: { type: 'string', default: '100' },
    fraction: { type: 'string', default: '0.1' },
    'batch-size': { type: 'string', default: '10' },
    'learning-rate': { type: 'string', default: '0.1' },
    'personal-epochs': { type: 'string', default: '1' },
    'ditto-lambda': { type: 'string', default: '0.1' },
    alpha: { type: 'string', default: '0.1' },
    'local-test': { type: 'string', default: '50' },
    /** Default 60,000 / K (the paper's 600 for K = 100); fewer for quick trials. */
    'examples-per-client': { type: 'string' },
    'central-epochs': { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
    /** Names this run's results <heterogeneity>-<tag>.json, kept beside the main run's and reported in a section of their own. */
    tag: { type: 'string' },
    'report-only': { type: 'boolean', default: false },
  },
});
const numberList = (text: string) => text.split(',').map(Number);
const checkpoints = values.rounds
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
const clients = Number(values.clients);
const perRound = Math.max(1, Math.round(Number(values.fraction) * clients));
const seed = Number(values.seed);
const plan: LocalTrainingPlan = { epochs: 1, batchSize: Number(values['batch-size']), learningRate: Number(values['learning-rate']) };
/** Personal training epochs per tested version (ascending); more than one: a settings grid. */
const personalEpochs = [...new Set(numberList(values['personal-epochs']))].sort((a, b) => a - b);
const lambdas = [...new Set(numberList(values['ditto-lambda']))].sort((a, b) => a - b);
const grid = personalEpochs.length > 1 || lambdas.length > 1;
if (personalEpochs.some((e) => !Number.isInteger(e) || e < 1) || lambdas.some((l) => !(l >= 0))) {
  throw new Error('--personal-epochs: integers >= 1; --ditto-lambda: numbers >= 0');
}
const loss = resolveLoss('categoricalCrossentropy');
const resultsDir = join(root, 'bench', 'results', 'personalization');

type Weights = Float32Array[];

/** What one heterogeneity's run records: per checkpoint, per method, every device's accuracy. */
interface HeterogeneityResult {
  heterogeneity: Heterogeneity;
  /** --tag: a run kept apart from the heterogeneity's main one. */
  tag?: string;
  settings: Record<string, number | string>;
  checkpoints: {
    round: number;
    seconds: number;
    global: number[];
    /** Per method (per setting in a grid: "ditto E=3 lambda=0.5"), every device's accuracy. */
    personal: Record<string, number[]>;
    stats: Record<string, DistributionStats>;
  }[];
  /** Rotation clusters: per cluster, the centrally trained model's mean local accuracy over its devices. */
  central: { cluster: number; devices: number; accuracy: number }[] | null;
}

function log(message: string): void {
  process.stdout.write(`[personalization] ${message}\n`);
}

class Trainer {
  readonly work = build2NN(seed);
  readonly anchor = build2NN(seed);
  readonly specs: WeightSpec[] = storedModelFromLayersModel(this.work, null).weightSpecs;

  initial(): Weights {
    return readWeights(this.work, this.specs);
  }

  load(model: tf.LayersModel, weights: Weights): void {
    const tensors = weights.map((w, i) => tf.tensor(w, this.specs[i]!.shape));
    model.setWeights(tensors);
    tf.dispose(tensors);
  }

  read(): Weights {
    return readWeights(this.work, this.specs);
  }

  async accuracy(model: tf.LayersModel, device: BenchDevice): Promise<number> {
    return (await evaluateModel(model, device.test.xs, device.test.ys, loss)).accuracy;
  }
}

/** A device's head (personal layers) on a shared body. */
function withHead(body: Weights, head: Weights | undefined): Weights {
  return head ? [...body.slice(0, SHARED_TENSORS), ...head] : body;
}

/** m distinct devices for round r (seeded). */
function selectDevices(round: number): number[] {
  const random = mulberry32(hashInts(seed, round, 101));
  const order = Array.from({ length: clients }, (_, i) => i);
  for (let i = 0; i < perRound; i++) {
    const j = i + Math.floor(random() * (clients - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.slice(0, perRound);
}

/** global + sum_k n_k (w_k - global) / sum_k n_k over the first `tensors` tensors. */
function fold(global: Weights, updates: { weights: Weights; n: number }[], tensors = global.length): Weights {
  const total = updates.reduce((s, u) => s + u.n, 0);
  return global.map((g, t) => {
    if (t >= tensors) return g;
    const next = new Float32Array(g.length);
    const sum = new Float64Array(g.length);
    for (const { weights, n } of updates) for (let j = 0; j < g.length; j++) sum[j]! += n * (weights[t]![j]! - g[j]!);
    for (let j = 0; j < g.length; j++) next[j] = g[j]! + sum[j]! / total;
    return next;
  });
}

async function runHeterogeneity(heterogeneity: Heterogeneity, methods: readonly Method[]): Promise<HeterogeneityResult> {
  const started = performance.now();
  const devices = await benchDevices({
    heterogeneity,
    clients,
    examplesPerClient: Number(values['examples-per-client'] ?? Math.floor(60_000 / clients)),
    alpha: Number(values.alpha),
    clusters: 4,
    localTest: Number(values['local-test']),
    seed,
  });
  log(`${heterogeneity}: ${devices.length} devices, ${devices.reduce((n, d) => n + d.train.count, 0)} training examples`);
  const trainer = new Trainer();
  let global = trainer.initial();
  let fedper = trainer.initial();
  /** Per lambda, each device's Ditto model. */
  const dittoModels = new Map<number, Map<number, Weights>>(lambdas.map((l) => [l, new Map<number, Weights>()]));
  const heads = new Map<number, Weights>();
  const wants = (method: Method) => methods.includes(method);
  const result: HeterogeneityResult = {
    heterogeneity,
    ...(values.tag ? { tag: values.tag } : {}),
    settings: {
      clients,
      examplesPerClient: Number(values['examples-per-client'] ?? Math.floor(60_000 / clients)),
      perRound,
      epochs: 1,
      batchSize: plan.batchSize,
      learningRate: plan.learningRate,
      personalEpochs: personalEpochs.join(','),
      dittoLambda: lambdas.join(','),
      localTest: Number(values['local-test']),
      centralEpochs: Number(values['central-epochs']),
      seed,
    },
    checkpoints: [],
    central: null,
  };
  const train = (device: BenchDevice) => trainModel(trainer.work, device.train.xs, device.train.ys, plan, { loss });
  // The reference first (independent of the federation), so that a run stopped early still has it.
  if (heterogeneity === 'rotated') {
    result.central = await centralBaseline(devices, trainer);
    save(result);
  }

  for (let round = 1; round <= checkpoints.at(-1)!; round++) {
    const selected = selectDevices(round).map((k) => devices[k]!);
    // FedAvg (the global model of none, fine-tune and Ditto); Ditto's personal step on the selected devices (its Algorithm 1).
    const updates: { weights: Weights; n: number }[] = [];
    trainer.load(trainer.anchor, global);
    for (const device of selected) {
      trainer.load(trainer.work, global);
      await train(device);
      updates.push({ weights: trainer.read(), n: device.train.count });
      if (wants('ditto')) {
        for (const [lambda, models] of dittoModels) {
          trainer.load(trainer.work, models.get(device.index) ?? global);
          await dittoUpdate(trainer.work, trainer.anchor, lambda, device.train.xs, device.train.ys, plan, { loss });
          models.set(device.index, trainer.read());
        }
      }
    }
    global = fold(global, updates);
    // FedPer: a separate federation whose output layer stays on the devices.
    if (wants('personal-layers')) {
      const shared: { weights: Weights; n: number }[] = [];
      for (const device of selected) {
        trainer.load(trainer.work, withHead(fedper, heads.get(device.index)));
        await train(device);
        const trained = trainer.read();
        heads.set(device.index, trained.slice(SHARED_TENSORS));
        shared.push({ weights: trained, n: device.train.count });
      }
      fedper = fold(fedper, shared, SHARED_TENSORS);
    }
    if (round % 10 === 0) log(`${heterogeneity}: round ${round} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    if (checkpoints.includes(round)) {
      result.checkpoints.push(await checkpoint(round, devices, trainer, { global, fedper, dittoModels, heads, methods }, started));
      save(result);
    }
  }
  tf.dispose(devices.flatMap((d) => [d.train.xs, d.train.ys, d.test.xs, d.test.ys]));
  trainer.work.dispose();
  trainer.anchor.dispose();
  return result;
}

interface FederationState {
  global: Weights;
  fedper: Weights;
  dittoModels: Map<number, Map<number, Weights>>;
  heads: Map<number, Weights>;
  methods: readonly Method[];
}

/** The key of one setting's results: the method's name alone unless this is a settings grid. */
function settingKey(method: Method, epochs: number, lambda?: number): string {
  if (!grid || method === 'none') return method;
  return `${method} E=${epochs}${lambda === undefined ? '' : ` lambda=${lambda}`}`;
}

/**
 * Trains the loaded `trainer.work` up to the largest personal epoch count, testing it after each
 * listed count; returns the accuracies and the weights after the first count (the state kept).
 */
async function trainAndTest(
  trainer: Trainer,
  device: BenchDevice,
  step: (epochs: number) => Promise<unknown>,
): Promise<{ accuracies: number[]; kept: Weights }> {
  const accuracies: number[] = [];
  let kept: Weights | null = null;
  let done = 0;
  for (const epochs of personalEpochs) {
    await step(epochs - done);
    done = epochs;
    accuracies.push(await trainer.accuracy(trainer.work, device));
    kept ??= trainer.read();
  }
  return { accuracies, kept: kept! };
}

/** Every device tests the global model and derives its personal model as the SDK does on testing a new version. */
async function checkpoint(
  round: number,
  devices: BenchDevice[],
  trainer: Trainer,
  state: FederationState,
  started: number,
): Promise<HeterogeneityResult['checkpoints'][number]> {
  const { global, fedper, dittoModels, heads, methods } = state;
  const globalAcc: number[] = [];
  const personal: Record<string, number[]> = {};
  const record = (key: string, accuracy: number) => (personal[key] ??= []).push(accuracy);
  // The state a device carries to the next checkpoint is kept only when one epoch count is tested.
  const keep = personalEpochs.length === 1;
  const train = (device: BenchDevice) => (epochs: number) => trainModel(trainer.work, device.train.xs, device.train.ys, { ...plan, epochs }, { loss });
  trainer.load(trainer.anchor, global);
  for (const device of devices) {
    const g = await trainer.accuracy(trainer.anchor, device);
    globalAcc.push(g);
    for (const method of methods) {
      if (method === 'none') {
        record('none', g);
      } else if (method === 'fine-tune') {
        trainer.load(trainer.work, global);
        const { accuracies } = await trainAndTest(trainer, device, train(device));
        accuracies.forEach((a, i) => record(settingKey(method, personalEpochs[i]!), a));
      } else if (method === 'ditto') {
        for (const [lambda, models] of dittoModels) {
          trainer.load(trainer.work, models.get(device.index) ?? global);
          const { accuracies, kept } = await trainAndTest(trainer, device, (epochs) =>
            dittoUpdate(trainer.work, trainer.anchor, lambda, device.train.xs, device.train.ys, { ...plan, epochs }, { loss }),
          );
          if (keep) models.set(device.index, kept);
          accuracies.forEach((a, i) => record(settingKey(method, personalEpochs[i]!, lambda), a));
        }
      } else if (method === 'personal-layers') {
        trainer.load(trainer.work, withHead(fedper, heads.get(device.index)));
        const { accuracies, kept } = await trainAndTest(trainer, device, (epochs) =>
          trainOnlyLayers(trainer.work, PERSONAL_LAYERS, device.train.xs, device.train.ys, { ...plan, epochs }, { loss }),
        );
        if (keep) heads.set(device.index, kept.slice(SHARED_TENSORS));
        accuracies.forEach((a, i) => record(settingKey(method, personalEpochs[i]!), a));
      }
    }
  }
  const stats = Object.fromEntries(Object.entries(personal).map(([key, v]) => [key, distribution(v, globalAcc)]));
  const seconds = (performance.now() - started) / 1000;
  log(
    `round ${round} (${seconds.toFixed(0)} s): ` +
      Object.entries(stats)
        .map(([key, st]) => `${key} mean ${pct(st.mean)} p10 ${pct(st.p10)} better ${pct(st.betterShare)} at least ${pct(st.atLeastShare)}`)
        .join('; '),
  );
  return { round, seconds, global: globalAcc, personal, stats };
}

/** Per rotation cluster: a 2NN trained on the cluster's pooled training data, tested on each of its devices' local tests. */
async function centralBaseline(devices: BenchDevice[], trainer: Trainer): Promise<NonNullable<HeterogeneityResult['central']>> {
  const out: NonNullable<HeterogeneityResult['central']> = [];
  const clusters = [...new Set(devices.map((d) => d.cluster))].sort();
  for (const cluster of clusters) {
    const members = devices.filter((d) => d.cluster === cluster);
    const xs = tf.concat(members.map((d) => d.train.xs));
    const ys = tf.concat(members.map((d) => d.train.ys));
    const fresh = build2NN(seed); // the federation's starting point, trained on the pooled data instead
    await trainModel(fresh, xs, ys, { epochs: Number(values['central-epochs']), batchSize: 50, learningRate: 0.1 }, { loss });
    let sum = 0;
    for (const device of members) sum += await trainer.accuracy(fresh, device);
    out.push({ cluster, devices: members.length, accuracy: sum / members.length });
    log(`central model of cluster ${cluster}: mean local accuracy ${pct(sum / members.length)}`);
    tf.dispose([xs, ys]);
    fresh.dispose();
  }
  return out;
}

function pct(value: number): string {
  return `${(100 * value).toFixed(1)}%`;
}

/** The result's file name without extension: the heterogeneity, then its tag if any. */
function resultName(result: HeterogeneityResult): string {
  return result.tag ? `${result.heterogeneity}-${result.tag}` : result.heterogeneity;
}

function save(result: HeterogeneityResult): void {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${resultName(result)}.json`), JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------- report

const LABELS: Record<Heterogeneity, string> = {
  dirichlet: `Dirichlet label skew (alpha = ${values.alpha})`,
  shards: 'shards (2 label shards per device)',
  rotated: '4 rotation clusters (0/90/180/270 degrees, IID labels)',
};

const RESULT_FILE = new RegExp(`^(${HETEROGENEITIES.join('|')})(-[A-Za-z0-9_]+)?\\.json$`);

/** Every heterogeneity's main run, then its tagged runs. */
function readResults(): HeterogeneityResult[] {
  return readdirSync(resultsDir)
    .filter((file) => RESULT_FILE.test(file))
    .map((file) => JSON.parse(readFileSync(join(resultsDir, file), 'utf8')) as HeterogeneityResult)
    .sort((a, b) => HETEROGENEITIES.indexOf(a.heterogeneity) - HETEROGENEITIES.indexOf(b.heterogeneity) || (a.tag ?? '').localeCompare(b.tag ?? ''));
}

function settingsLine(s: HeterogeneityResult['settings']): string {
  return (
    `K = ${s.clients} devices (${s.examplesPerClient} training examples each on average), ${s.perRound} per round, E = ${s.epochs}, B = ${s.batchSize}, lr = ${s.learningRate}; ` +
    `personal training ${s.personalEpochs} epoch(s) per tested version, Ditto lambda = ${s.dittoLambda}, ${s.localTest ?? 50} held-out local test examples per device, seed ${s.seed}. ` +
    `Global = the FedAvg model on each device's local test.`
  );
}

const TABLE_HEAD = [
  '| round | method | mean | median | p10 | beats global on | at least as good on | mean gain (points) | global mean | global p10 |',
  '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
];

/** One table row per setting (the statistics recomputed from the per-device accuracies). */
function tableRows(cp: HeterogeneityResult['checkpoints'][number], keys: readonly string[]): string[] {
  const g = distribution(cp.global, cp.global);
  return keys.map((key) => {
    const st = distribution(cp.personal[key]!, cp.global);
    const share = (x: number) => `${Math.round(x * st.devices)} of ${st.devices}`;
    return `| ${cp.round} | ${key} | ${pct(st.mean)} | ${pct(st.median)} | ${pct(st.p10)} | ${share(st.betterShare)} | ${share(st.atLeastShare)} | ${(100 * st.meanGain).toFixed(1)} | ${pct(g.mean)} | ${pct(g.p10)} |`;
  });
}

/**
 * Per method, the setting chosen at the first checkpoint (the short horizon): the highest mean
 * local accuracy, ties to the first listed (fewer epochs, smaller lambda). Without a grid, each method's one key.
 */
function chosenSettings(result: HeterogeneityResult): string[] {
  const first = result.checkpoints[0];
  if (!first) return [];
  const best = new Map<string, { key: string; mean: number }>();
  for (const [key, v] of Object.entries(first.personal)) {
    const method = key.split(' ')[0]!;
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const current = best.get(method);
    if (!current || mean > current.mean) best.set(method, { key, mean });
  }
  return [...best.values()].map((b) => b.key);
}

function report(): void {
  const lines: string[] = [];
  const results = readResults();
  for (const result of results) {
    const chosen = chosenSettings(result);
    const isGrid = result.checkpoints.some((cp) => Object.keys(cp.personal).length > chosen.length);
    const label = result.tag ? `${LABELS[result.heterogeneity]}, run "${result.tag}"` : LABELS[result.heterogeneity];
    lines.push(`## ${label}`, '', settingsLine(result.settings), '');
    if (isGrid) lines.push(`Per method, the setting chosen at round ${result.checkpoints[0]!.round} (highest mean local accuracy there):`, '');
    lines.push(...TABLE_HEAD);
    for (const cp of result.checkpoints) {
      lines.push(...tableRows(cp, chosen));
      const file = `${resultName(result)}-r${cp.round}.svg`;
      writeFileSync(
        join(resultsDir, file),
        distributionSvg(`${label}, round ${cp.round}: local test accuracy per device`, [
          { label: 'global', values: cp.global },
          ...chosen.filter((key) => key !== 'none').map((key) => ({ label: key, values: cp.personal[key]! })),
        ]),
      );
    }
    lines.push('');
    if (isGrid) {
      lines.push('Every setting:', '', ...TABLE_HEAD);
      for (const cp of result.checkpoints) lines.push(...tableRows(cp, Object.keys(cp.personal)));
      lines.push('');
    }
    for (const cp of result.checkpoints) lines.push(`![round ${cp.round}](personalization/${resultName(result)}-r${cp.round}.svg)`);
    lines.push('');
    if (result.central) lines.push(...centralLines(result), '');
  }
  writeFileSync(join(root, 'bench', 'results', 'personalization-tables.md'), lines.join('\n') + '\n');
  log(`wrote bench/results/personalization-tables.md from ${results.length} result file(s)`);
}

/** Under rotation clusters: each method's mean personal accuracy per cluster against the central model of that cluster. */
function centralLines(result: HeterogeneityResult): string[] {
  const last = result.checkpoints.at(-1);
  if (!last || !result.central) return [];
  const out = [
    `Round ${last.round}, per cluster: mean personal accuracy against a 2NN trained centrally on the cluster's pooled data (${result.settings.centralEpochs ?? values['central-epochs']} epochs, B = 50).`,
    '',
  ];
  out.push(
    '| cluster | central | ' + Object.keys(last.personal).join(' | ') + ' |',
    '|---:|---:|' +
      Object.keys(last.personal)
        .map(() => '---:')
        .join('|') +
      '|',
  );
  for (const c of result.central) {
    const members = Array.from({ length: last.global.length }, (_, k) => k).filter((k) => k % 4 === c.cluster);
    const cells = Object.values(last.personal).map((v) => {
      const mean = members.reduce((sum, k) => sum + v[k]!, 0) / members.length;
      return `${pct(mean)} (${((mean - c.accuracy) * 100).toFixed(1)})`;
    });
    out.push(`| ${c.cluster * 90} deg | ${pct(c.accuracy)} | ${cells.join(' | ')} |`);
  }
  return out;
}

async function main(): Promise<void> {
  if (!values['report-only']) {
    await initNodeBackend();
    for (const name of values.heterogeneity.split(',')) {
      if (!(HETEROGENEITIES as readonly string[]).includes(name)) throw new Error(`unknown heterogeneity ${name}`);
      await runHeterogeneity(name as Heterogeneity, METHODS);
      report();
    }
  }
  report();
}

await main();
