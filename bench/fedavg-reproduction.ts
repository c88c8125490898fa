// Reproduces Table 1 of McMahan et al. 2017 for the 2NN (rounds to 97% test accuracy, C=0.1, E=1,
// B=10, K=100) with `pnpm simulate`, and writes bench/results/fedavg.md with the curves.
// Also times rounds: where does a round's time go (client training, serialization, transport,
// aggregation, commit)? A run with one client per round gives the clean sequence of one update.
// Usage: pnpm bench:fedavg [--only iid|shards|iid-c0|shards-c0|timing] [--max-rounds N] [--seed S] [--report-only]
// Build first (pnpm build). The non-IID run needs several hundred rounds: up to an hour on 2 cores.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { learningCurvesSvg, type SimulationSummary } from '../server/src/simulation/report.js';
import { medianOfMeasured as median } from './lib/measure.js';
import { bestAccuracy, curve, paperArgs, readResult, root, roundsTo, simulate, type PaperSetting } from './lib/simulate.js';

const { values } = parseArgs({
  options: {
    'report-only': { type: 'boolean', default: false },
    only: { type: 'string' },
    'max-rounds': { type: 'string', default: '1200' },
    seed: { type: 'string', default: '1' },
  },
});

interface Config {
  name: string;
  label: string;
  partition: PaperSetting['partition'];
  fraction: number;
  paperRounds: number;
  learningRate: number;
}

// C = 0 in the paper means one client per round (m = max(C * K, 1)): fraction 0.01 here.
const CONFIGS: Config[] = [
  { name: 'iid', label: 'IID', partition: 'iid', fraction: 0.1, paperRounds: 87, learningRate: 0.1 },
  { name: 'shards', label: 'pathological non-IID (shards)', partition: 'shards', fraction: 0.1, paperRounds: 664, learningRate: 0.1 },
  { name: 'iid-c0', label: 'IID', partition: 'iid', fraction: 0.01, paperRounds: 316, learningRate: 0.1 },
  { name: 'shards-c0', label: 'pathological non-IID (shards)', partition: 'shards', fraction: 0.01, paperRounds: 3275, learningRate: 0.1 },
];
const resultsDir = join(root, 'bench', 'results', 'fedavg');

/** A configuration's stored result and its rounds to 97%. */
interface Found {
  config: Config;
  result: SimulationSummary;
  rounds: number | null;
}

function runSimulations(): void {
  const wanted = (name: string): boolean => !values['report-only'] && (!values.only || values.only === name);
  for (const config of CONFIGS) {
    if (!wanted(config.name)) continue;
    const maxRounds = String(Math.max(Number(values['max-rounds']), Math.ceil(1.5 * config.paperRounds)));
    simulate(
      config.name,
      [
        ...paperArgs({ partition: config.partition, learningRate: config.learningRate, seed: values.seed, fraction: config.fraction }),
        '--rounds',
        maxRounds,
        '--target-accuracy',
        '0.97',
      ],
      resultsDir,
    );
  }
  // One client per round (C = 0.01) on one worker thread: nothing overlaps, so each phase is clean.
  if (wanted('timing')) {
    simulate('timing', [...paperArgs({ partition: 'iid', seed: values.seed, fraction: 0.01 }), '--workers', '1', '--rounds', '40'], resultsDir);
  }
}

// ---------------------------------------------------------------- round-time split
/** Median of each phase over a run's rounds (the first 5 skipped: JIT and cache warm-up). */
function timeSplit(result: SimulationSummary) {
  const rows = result.rounds.filter((row) => row.round > 5 && row.status === 'committed');
  const m = (key: 'seconds' | 'selectionMs' | 'reportingMs' | 'commitMs' | 'clientDownloadMs' | 'clientTrainingMs' | 'clientEncodeMs' | 'clientUploadMs') =>
    median(rows.map((row) => row[key]));
  const perUpload = (key: 'validationMs' | 'aggregationMs') => median(rows.map((row) => (row.accepted > 0 ? row[key] / row.accepted : null)));
  const round = m('seconds')! * 1000;
  const validation = perUpload('validationMs');
  const transport = median(
    rows.map((row) => (row.accepted > 0 && row.clientUploadMs !== null ? row.clientUploadMs - (row.validationMs + row.aggregationMs) / row.accepted : null)),
  );
  return {
    rounds: rows.length,
    clients: median(rows.map((row) => row.accepted)),
    round,
    selection: m('selectionMs'),
    reporting: m('reportingMs'),
    commit: m('commitMs'),
    download: m('clientDownloadMs'),
    training: m('clientTrainingMs'),
    encode: m('clientEncodeMs'),
    upload: m('clientUploadMs'),
    validation,
    transport,
    aggregation: perUpload('aggregationMs'),
  };
}
const ms = (value: number | null | undefined): string =>
  value === null || value === undefined ? '-' : value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;

function splitRows(): string[] {
  const rows: string[] = [];
  for (const [name, label] of [
    ['timing', '1 client per round (C = 0.01), IID, one worker'],
    ['shards', '10 clients per round (C = 0.1), shards, two workers'],
  ] as const) {
    const result = readResult(resultsDir, name);
    if (!result || result.rounds[0]?.clientTrainingMs === undefined) continue;
    const t = timeSplit(result);
    const overhead = t.encode! + t.validation! + Math.max(0, t.transport!) + t.aggregation!;
    rows.push(
      `| ${label} | ${t.rounds} | ${ms(t.round)} | ${ms(t.selection)} | ${ms(t.reporting)} | ${ms(t.commit)} | ${ms(t.download)} | ${ms(t.training)} | ${ms(t.encode)} | ${ms(t.transport)} | ${ms(t.validation)} | ${ms(t.aggregation)} | ${((100 * overhead) / t.training!).toFixed(1)}% |`,
    );
  }
  return rows;
}

// ---------------------------------------------------------------- rounds to 97%
/** The table covers every configuration whose results exist (runs can be done one at a time). */
function resultRows(found: Map<string, Found>): string[] {
  const rows: string[] = [];
  for (const config of CONFIGS) {
    const result = readResult(resultsDir, config.name);
    if (!result) continue;
    const rounds = roundsTo(result, 0.97);
    found.set(config.name, { config, result, rounds });
    const seconds = result.rounds.reduce((sum, r) => sum + (r.seconds ?? 0), 0);
    rows.push(
      `| ${config.label} | ${config.fraction === 0.01 ? '0 (1 client)' : config.fraction} | ${String(result.config.learningRate)} | ${config.paperRounds} | ${rounds ?? `not reached in ${result.rounds.length} (best ${(bestAccuracy(result) * 100).toFixed(2)}%)`} | ${rounds ? (rounds / config.paperRounds).toFixed(2) : '-'} | ${rounds ? (rounds <= 1.3 * config.paperRounds ? 'yes' : 'no') : '-'} | ${(seconds / Math.max(1, result.rounds.length)).toFixed(1)} s | [csv](fedavg/${config.name}.csv), [svg](fedavg/${config.name}.svg) |`,
    );
  }
  return rows;
}

/** One plot per client fraction, IID beside non-IID, zoomed on the last points before the target. */
async function writePlots(found: Map<string, Found>): Promise<string[]> {
  const plots: string[] = [];
  for (const [file, fraction, title] of [
    ['c01.svg', 0.1, 'C = 0.1 (10 clients per round)'],
    ['c0.svg', 0.01, 'C = 0 (1 client per round)'],
  ] as const) {
    const series = [...found.values()]
      .filter(({ config }) => config.fraction === fraction)
      .map(({ config, result }) => ({ label: config.label, points: curve(result) }));
    if (series.length === 0) continue;
    writeFileSync(
      join(resultsDir, file),
      await learningCurvesSvg(series, { title: `FedAvg, 2NN, ${title}, E = 1, B = 10: test accuracy`, target: 0.97, yMin: 80 }),
    );
    plots.push(`![${title}](fedavg/${file})`);
  }
  return plots;
}

/** What the numbers say, from the results present. */
function notesOf(found: Map<string, Found>): string[] {
  const notes: string[] = [];
  const ratio = (name: string): number | null => {
    const entry = found.get(name);
    return entry?.rounds ? entry.rounds / entry.config.paperRounds : null;
  };
  const ratios = CONFIGS.map((c) => ratio(c.name)).filter((r): r is number => r !== null);
  if (ratios.length > 0) {
    const slower = ratios.filter((r) => r > 1.3).length;
    notes.push(
      slower === 0
        ? `Every configuration run reaches 97% within the 1.3x bound, in ${Math.round(Math.min(...ratios) * 100)}-${Math.round(Math.max(...ratios) * 100)}% of the paper's rounds.`
        : `${slower} configuration(s) need more than 1.3x the paper's rounds: see the table.`,
    );
  }
  for (const [iid, shards, label] of [
    ['iid', 'shards', 'C = 0.1'],
    ['iid-c0', 'shards-c0', 'C = 0'],
  ] as const) {
    const a = found.get(iid)?.rounds;
    const b = found.get(shards)?.rounds;
    if (a && b) {
      const paper = found.get(shards)!.config.paperRounds / found.get(iid)!.config.paperRounds;
      notes.push(`Pathological non-IID data costs ${(b / a).toFixed(1)}x the rounds of IID data at ${label} (the paper: ${paper.toFixed(1)}x).`);
    }
  }
  const lonely = found.get('shards-c0');
  if (lonely?.rounds) {
    const before = lonely.result.rounds.slice(Math.max(0, lonely.rounds - 50), lonely.rounds).map((row) => row.accuracy * 100);
    notes.push(
      `With one 2-digit client per round (C = 0, shards) every round pulls the model towards two digits: over the 50 rounds before round ${lonely.rounds}, ` +
        `test accuracy swings between ${Math.min(...before).toFixed(1)}% and ${Math.max(...before).toFixed(1)}%, and round ${lonely.rounds} is the first to touch 97%.`,
    );
  }
  const c01 = ratio('iid') && ratio('iid-c0') ? [found.get('iid')!.rounds!, found.get('iid-c0')!.rounds!] : null;
  if (c01) notes.push(`Ten clients per round instead of one cut the IID rounds ${(c01[1]! / c01[0]!).toFixed(1)}x (the paper: ${(316 / 87).toFixed(1)}x).`);
  return notes;
}

async function writeReport(): Promise<void> {
  const found = new Map<string, Found>();
  const rows = resultRows(found);
  const plots = await writePlots(found);
  const notes = notesOf(found);
  const timing = splitRows();
  writeFileSync(
    join(root, 'bench', 'results', 'fedavg.md'),
    `# FedAvg reproduction: McMahan et al. 2017, Table 1, 2NN

Rounds of federated averaging to reach 97% accuracy on the 10,000 MNIST test images, with K = 100
clients, C = 0.1 (10 clients per round) and C = 0 (one client per round), E = 1 local epoch, B = 10, plain client SGD, starting from an
untrained 2NN (784-200-200-10, 199,210 parameters). Every client is a real Flock SDK
\`FederatedClient\` talking to a real coordinator over socket.io on loopback (\`pnpm simulate\`).
Produced by \`pnpm bench:fedavg\` (seed ${values.seed}); the implementation counts as
correct when it needs at most 1.3x the paper's rounds.

| partition | C | client lr | paper rounds | our rounds to 97% | ratio | within 1.3x | mean round time | data |
|---|---:|---:|---:|---:|---:|---|---:|---|
${rows.join('\n')}

${plots.join('\n')}

${notes.map((note) => `- ${note}`).join('\n')}
- We need fewer rounds than the paper, never more. The 1.3x bound is the one that matters: a
  wrong weighting, a stale base version or a lost update slows convergence down, it does not speed
  it up. What makes ours faster is not established; candidates are the initialization (Keras's
  Glorot-uniform, against the paper's unstated one) and the learning rate (the paper's was the best
  of a grid for each setting; ours is 0.1 everywhere, the value reproductions use).

Machine: 2 cores, Node ${process.version}, tfjs wasm backend. Round time is the wall time from
starting a round to its commit (selection, model download, local training of 10 x 600 examples,
upload, aggregation); the test-set evaluation runs in a separate thread, overlapped with the next round.

## Where a round's time goes

Medians over the rounds of a run (the first 5 rounds skipped). Device side, from the SDK's
\`uploaded.timings\` (per update): *download* = fetching the round's model (0 when cached), *training* =
600 examples, E = 1, B = 10, weights read back included, *encode* = delta computation + finiteness
check + binary encoding (serialization), *transport* = upload round trip (socket.io, loopback) minus
the coordinator's own work on it. Coordinator side, per update, from the round's metrics:
*validation* = decoding and checking the upload (shapes, finiteness, norm), *aggregation* = folding
it into the running FedAvg sum (and the share of finishing the mean). Phases from the round's state
transitions: *selection* (selecting + configuring), *reporting* (until the last update is in) and
*commit* (finishing the aggregate and storing the new version in SQLite in one transaction).
Overhead = (encode + transport + validation + aggregation) / training.

| run | rounds | round (wall) | selection | reporting | commit | download | training | encode | transport | validation | aggregation | overhead |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${timing.join('\n')}

With 10 clients per round, two worker threads each train 5 clients interleaved, so a client's
*training* wall time covers its neighbours' batches too; the 1-client run shows the true cost of one
update, and the round wall time of the 10-client run is about 5 of them back to back.
`,
  );
  console.log('wrote bench/results/fedavg.md');
}

runSimulations();
await writeReport();
