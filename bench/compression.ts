// Compressed updates (issue 14): int8 and top-k with error feedback against float32 uploads, the
// same FedAvg runs (K=100, C=0.1, E=1, B=10, untrained 2NN, same seed) to the same number of
// rounds, IID and pathological non-IID (shards). Measures upload bytes per accepted update (the
// coordinator's bytesUp), download bytes (bytesDown: whole models for float32, int8 download
// deltas from a held version in the compressed arms), and test accuracy after the same rounds.
// Writes bench/results/compression.md (and per-run CSV/JSON/SVG under bench/results/compression/).
// Usage: pnpm bench:compression [--only iid|shards] [--arm none|int8|topk] [--iid-rounds N] [--shards-rounds N]
//        [--topk-fraction F] [--seed S] [--report-only]
// Results of seed 1 are named <partition>-<arm>, of another seed S <partition>-<arm>-seedS; the
// report has a table per partition and seed found, and the mean over seeds when there are several.
// Build first (pnpm build). Each arm is a full simulation: about 3-8 s per round on 2 shared cores.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { learningCurvesSvg, type SimulationSummary } from '../server/src/simulation/report.js';
import { curve, paperArgs, readResult, root, simulate } from './lib/simulate.js';

const { values } = parseArgs({
  options: {
    'report-only': { type: 'boolean', default: false },
    only: { type: 'string' },
    arm: { type: 'string' },
    'iid-rounds': { type: 'string', default: '30' },
    'shards-rounds': { type: 'string', default: '50' },
    'topk-fraction': { type: 'string', default: '0.2' },
    seed: { type: 'string', default: '1' },
  },
});

const ARMS = ['none', 'int8', 'topk'] as const;
type Arm = (typeof ARMS)[number];
const PARTITIONS = [
  { name: 'iid', label: 'IID', rounds: Number(values['iid-rounds']) },
  { name: 'shards', label: 'pathological non-IID (shards)', rounds: Number(values['shards-rounds']) },
] as const;
const resultsDir = join(root, 'bench', 'results', 'compression');
const fraction = Number(values['topk-fraction']);
/** Float32 bytes of the 2NN (199,210 values). */
const MODEL_BYTES = 199_210 * 4;
/** The goals of the issue. */
const GOALS: Record<Exclude<Arm, 'none'>, number> = { int8: 3.9, topk: 20 };
const ACCURACY_GOAL_POINTS = 0.5;
/** Hand-written context for the report: how the stored results were produced (kept with the generator so --report-only keeps it). */
const REPORT_PREAMBLE: string[] = [
  '',
  'Stored runs (2026-12-05, Node 20, 2 vCPUs shared with other work: load average 4-11 during the runs, so round times are not comparable; accuracy and bytes are unaffected):',
  '',
  '- float32: seed 1 at commit c135f4c (`pnpm bench:compression --only iid --arm none --iid-rounds 30`, `--only shards --arm none --shards-rounds 50`), seed 2 at f98080d (`... --seed 2`), seed 3 (IID and shards) and seeds 4-5 (shards) at 0afc296 (`... --seed S`). The float32 path did not change in between.',
  '- int8: seeds 1 and 2 only, at 625d634 and f98080d (`--arm int8`); its path is unchanged since (the fused fold and the wasm int8 kernel are bit-identical to decoding first, property-tested in server/test/compression/fused-fold.test.ts).',
  '- top-k, the current layout (4-bit level codes, Rice-coded gaps; fraction 0.2): shards seeds 1-2 with `pnpm bench:compression --only shards --arm topk --shards-rounds 50 --seed S` from the working tree committed as 65713a6; IID seeds 1-2 with the same code, run as `node server/dist/simulation/main.js --clients 100 --fraction 0.1 --epochs 1 --batch-size 10 --learning-rate 0.1 --partition iid --seed S --local-eval 0 --no-progress --rounds 30 --compression topk --topk-fraction 0.2` (the arguments the bench passes) and copied into place; IID seed 3 and shards seeds 3-5 with `pnpm bench:compression --only iid|shards --arm topk --seed S` at 0afc296.',
  '- shards seeds 6-10, float32 and top-k (2026-12-06): `pnpm bench:compression --only shards --arm none|topk --seed S` with the code of fefcce5 (the same top-k code as seeds 1-5), two at a time.',
  '- The previous top-k layout (int8 values, LEB128 gaps, 9.5% kept) and a sweep of its fraction are in the notes below; those runs are replaced here.',
  '',
  'Runs are not bit-reproducible even with a seed (stochastic rounding draws from Math.random on the devices, and upload arrival order changes float64 sums), so differences of a few tenths of a point between arms are within run-to-run noise; shards accuracy swings by several points between consecutive rounds, hence the mean of the last 5 rounds and several seeds. The goal is read as "at most 0.5 points below float32"; "within" below means |difference| <= 0.5, and results above float32 by more are said so.',
];
/** Hand-written findings, after the generated ones. */
const REPORT_NOTES: string[] = [
  'Bytes: every compressed arm meets its goal in every run: int8 4.00x; top-k at 20% 20.79-20.80x on IID (about 38,320 bytes per update) and 21.02-21.07x on shards (37,825-37,911): 37 bytes per tensor, half a byte of code per kept value (39,842 kept of 199,210) and 3.6-3.7 bits of Rice-coded gap per kept value. The previous layout (one int8 and one LEB128 varint per kept value, about 2 bytes) fit only 9.5% into the same 21x.',
  'Why the layout changed: with the previous layout, IID, seed 1, 30 rounds (`node server/dist/simulation/main.js` with the arguments above and `--topk-fraction F`, at 87dfd82; bench/results/compression/old-layout-sweep/), top-k against float32 after the last round / over the last 5 rounds was -0.37 / -0.35 points at F = 0.095 (20.98x), -0.36 / -0.34 at 0.125 (15.96x), -0.25 / -0.24 at 0.15 (13.31x), +0.12 / +0.17 at 0.3 (6.66x) and +0.05 / +0.06 at 1 (2.00x). The deficit is what top-k leaves for later, not the precision of what it sends, so the bytes went into more kept values: 8 geometric magnitude levels per tensor (sign + 3 bits, stochastic rounding between the two levels around a value, its error kept in the residual like the values left out) and Rice codes for the gaps.',
  'Top-k accuracy, IID (30 rounds, 3 seeds): **within 0.5 points in every seed.** After the last round -0.05, -0.31, -0.26 (mean -0.21); over the last 5 rounds -0.01, -0.12, -0.15 (mean -0.09). The previous layout at 9.5%: mean -0.55 and -0.44 over its two seeds.',
  "Top-k accuracy, shards (50 rounds, 10 seeds): **within 0.5 points on the mean over seeds.** Over the last 5 rounds -0.50, +0.19, -1.45, -0.35, -0.48, -0.20, +0.45, +0.27, +0.25, +1.20: mean -0.06 (standard error 0.22). After the last round +0.51, +0.85, -1.23, -5.15, +0.87, +0.11, +1.97, -1.12, +1.18, +2.23: mean +0.02 (standard error 0.68; seed 4's last round dips to 87.3% after 90.9-92.4% in the four rounds before, while its float32 run jumps from 90.8% to 92.5%: the swing this partition shows in every arm). Single seeds say little here: float32 alone ends between 90.29% and 93.79% across the ten seeds, and int8, which loses almost nothing per value, lands 1.49 above and 0.52 below float32 over the last 5 rounds of its two seeds. With the first 5 seeds only, the last-5 mean was -0.52 (standard error 0.26); seeds 6-10 were added to tell the difference from noise, and every seed run is in the table. The previous layout at 9.5%: mean -0.91 / -0.53 over two seeds. Tried and not kept (seeds 1-2, not in the tables): 2 magnitude levels per tensor with 30% kept (run with the 4-bit codes unchanged, so only its accuracy is measured; packed as 2-bit codes it would be about 20.5x by the layout's arithmetic) ran 1.03 points below float32 over the last 5 rounds against -0.16 for the layout above on the same seeds: coarser values cost more than more kept values gain on shards.",
  'int8 meets the goal on IID in both of its seeds (after the last round +0.00 and -0.30, over the last 5 +0.16 and +0.09) and on the mean over its two shards seeds (+1.17 after the last round, +0.48 over the last 5); single shards seeds swing on both sides of float32 by up to 1.5 points (seed 2, last 5: -0.52).',
];

function armArgs(arm: Arm): string[] {
  if (arm === 'none') return [];
  return arm === 'topk' ? ['--compression', 'topk', '--topk-fraction', String(fraction)] : ['--compression', arm];
}

/** The stored result's name of one arm (seed 1 keeps the unsuffixed names of earlier runs). */
function resultName(partition: string, arm: Arm, seed: string): string {
  return seed === '1' ? `${partition}-${arm}` : `${partition}-${arm}-seed${seed}`;
}
/** Seeds looked for when writing the report. */
const REPORT_SEEDS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'];

function runSimulations(): void {
  if (values['report-only']) return;
  for (const partition of PARTITIONS) {
    if (values.only && values.only !== partition.name) continue;
    for (const arm of ARMS) {
      if (values.arm && values.arm !== arm) continue;
      simulate(
        resultName(partition.name, arm, values.seed),
        [...paperArgs({ partition: partition.name, seed: values.seed }), '--rounds', String(partition.rounds), ...armArgs(arm)],
        resultsDir,
      );
    }
  }
}

interface ArmResult {
  arm: Arm;
  result: SimulationSummary;
  /** Mean bytes of an accepted upload (bytesUp / accepted over the run). */
  bytesPerUpdate: number;
  bytesDown: number;
  final: number;
  /** Mean test accuracy over the last 5 rounds (non-IID accuracy swings from round to round). */
  lastFive: number;
}

function summarize(arm: Arm, result: SimulationSummary): ArmResult {
  const up = result.rounds.reduce((sum, row) => sum + (row.bytesUp ?? 0), 0);
  const accepted = result.rounds.reduce((sum, row) => sum + row.accepted, 0);
  const lastFive = result.rounds.slice(-5);
  return {
    arm,
    result,
    bytesPerUpdate: accepted > 0 ? up / accepted : NaN,
    bytesDown: result.rounds.reduce((sum, row) => sum + (row.bytesDown ?? 0), 0),
    final: result.finalAccuracy,
    lastFive: lastFive.reduce((sum, row) => sum + row.accuracy, 0) / Math.max(1, lastFive.length),
  };
}

const pct = (value: number): string => `${(100 * value).toFixed(2)}%`;
const points = (value: number): string => `${value >= 0 ? '+' : ''}${(100 * value).toFixed(2)}`;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function armLabel(entry: ArmResult): string {
  if (entry.arm === 'none') return 'float32';
  if (entry.arm === 'int8') return 'int8 (stochastic rounding)';
  const used = entry.result.config as { compression?: { topkFraction?: number } };
  return `top-k ${used.compression?.topkFraction ?? fraction} + error feedback`;
}

async function writeReport(): Promise<void> {
  const lines: string[] = [];
  const notes: string[] = [];
  const plots: string[] = [];
  for (const partition of PARTITIONS) {
    /** Per arm, the differences to float32 of each seed (final, last five). */
    const differences = new Map<Arm, { final: number[]; lastFive: number[]; ratio: number[]; label: string }>();
    let firstSeedArms: ArmResult[] | null = null;
    for (const seed of REPORT_SEEDS) {
      const arms = ARMS.map((arm) => {
        const result = readResult(resultsDir, resultName(partition.name, arm, seed));
        return result ? summarize(arm, result) : null;
      }).filter((entry): entry is ArmResult => entry !== null);
      const baseline = arms.find((entry) => entry.arm === 'none');
      if (!baseline || arms.length < 2) continue;
      firstSeedArms ??= arms;
      lines.push(
        '',
        `### ${partition.label}, ${baseline.result.rounds.length} rounds, seed ${seed}`,
        '',
        '| uploads | bytes per update | fewer bytes than float32 | goal | test accuracy after the last round | vs float32 (points) | mean of the last 5 rounds | vs float32 (points) | download bytes (all rounds) | vs float32 |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      );
      for (const entry of arms) {
        const ratio = baseline.bytesPerUpdate / entry.bytesPerUpdate;
        const goal = entry.arm === 'none' ? '-' : `>= ${GOALS[entry.arm]}x`;
        const label = armLabel(entry);
        if (entry.result.rounds.length !== baseline.result.rounds.length)
          throw new Error(`${partition.name} seed ${seed}: ${label} ran ${entry.result.rounds.length} rounds, float32 ${baseline.result.rounds.length}`);
        lines.push(
          `| ${label} | ${Math.round(entry.bytesPerUpdate).toLocaleString('en-US')} | ${ratio.toFixed(2)}x | ${goal} | ${pct(entry.final)} | ${entry.arm === 'none' ? '-' : points(entry.final - baseline.final)} | ${pct(entry.lastFive)} | ${entry.arm === 'none' ? '-' : points(entry.lastFive - baseline.lastFive)} | ${mib(entry.bytesDown)} | ${(entry.bytesDown / baseline.bytesDown).toFixed(2)} |`,
        );
        if (entry.arm !== 'none') {
          const bytesMet = ratio >= GOALS[entry.arm];
          const within = (difference: number): string =>
            `${Math.abs(difference) <= ACCURACY_GOAL_POINTS / 100 ? 'within' : difference > 0 ? 'above float32 by more than' : 'below float32 by more than'} ${ACCURACY_GOAL_POINTS}`;
          notes.push(
            `${partition.label}, seed ${seed}, ${label}: ${ratio.toFixed(2)}x fewer upload bytes (${bytesMet ? 'meets' : 'misses'} the ${GOALS[entry.arm]}x goal); ` +
              `accuracy after the last round ${points(entry.final - baseline.final)} points from float32 (${within(entry.final - baseline.final)}), ` +
              `mean of the last 5 rounds ${points(entry.lastFive - baseline.lastFive)} (${within(entry.lastFive - baseline.lastFive)}).`,
          );
          const mine = differences.get(entry.arm) ?? { final: [], lastFive: [], ratio: [], label };
          mine.final.push(entry.final - baseline.final);
          mine.lastFive.push(entry.lastFive - baseline.lastFive);
          mine.ratio.push(ratio);
          differences.set(entry.arm, mine);
        }
      }
    }
    const seeds = Math.max(0, ...[...differences.values()].map((entry) => entry.final.length));
    if (seeds > 1) {
      const mean = (list: number[]): number => list.reduce((a, b) => a + b, 0) / list.length;
      /** The standard error of the mean over seeds (sample standard deviation / sqrt(seeds)). */
      const standardError = (list: number[]): number => {
        const centre = mean(list);
        return Math.sqrt(list.reduce((sum, value) => sum + (value - centre) ** 2, 0) / (list.length - 1) / list.length);
      };
      const meanWithError = (list: number[]): string =>
        list.length < 2 ? points(mean(list)) : `${points(mean(list))} ± ${(100 * standardError(list)).toFixed(2)}`;
      lines.push(
        '',
        `### ${partition.label}: mean over seeds (each arm against float32 of the same seed)`,
        '',
        '| uploads | seeds | fewer bytes than float32 (mean) | vs float32 after the last round (points, mean ± standard error) | per seed | vs float32, mean of the last 5 rounds (points, mean ± standard error) | per seed |',
        '|---|---:|---:|---:|---|---:|---|',
      );
      for (const entry of differences.values()) {
        lines.push(
          `| ${entry.label} | ${entry.final.length} | ${mean(entry.ratio).toFixed(2)}x | ${meanWithError(entry.final)} | ${entry.final.map(points).join(', ')} | ${meanWithError(entry.lastFive)} | ${entry.lastFive.map(points).join(', ')} |`,
        );
      }
    }
    if (!firstSeedArms) continue;
    const file = `${partition.name}.svg`;
    writeFileSync(
      join(resultsDir, file),
      await learningCurvesSvg(
        firstSeedArms.map((entry) => ({ label: entry.arm === 'none' ? 'float32' : entry.arm, points: curve(entry.result) })),
        { title: `FedAvg, 2NN, ${partition.label}, K = 100, C = 0.1, E = 1, B = 10: test accuracy (seed 1)`, yMin: partition.name === 'iid' ? 80 : 50 },
      ),
    );
    plots.push(`![${partition.label}](compression/${file})`);
  }
  const report = [
    '# Compressed updates',
    '',
    '`pnpm bench:compression` (bench/compression.ts): the same FedAvg simulation (`pnpm simulate`: K = 100 virtual SDK clients over real socket.io, C = 0.1, E = 1, B = 10, learning rate 0.1, an untrained 2NN) with float32, int8 and top-k (error feedback) uploads, to the same number of rounds, per seed; accuracy on the 10,000 MNIST test images.',
    "Bytes per update: the coordinator's `bytesUp` (accepted uploads, as sent) over accepted updates. Download bytes: `bytesDown` (the base version sent to devices: whole models in the float32 arm; in the compressed arms, `downloadDeltas` devices get int8 deltas from a version they hold, whole models the first time).",
    'Top-k layout (compression.ts, protocol 3): per tensor a u32 count, 8 f32 magnitude levels and a u8 Rice parameter; one 4-bit code per kept value (sign and level; stochastic rounding between the two levels around the value); the gaps between positions (position = previous + 1 + gap) Rice-coded: 37T + K/2 + gap bytes.',
    ...REPORT_PREAMBLE,
    ...lines,
    '',
    ...notes.map((note) => `- ${note}`),
    ...REPORT_NOTES.map((note) => `- ${note}`),
    `- A download delta is ${(((4 * 6 + 199_210) / MODEL_BYTES) * 100).toFixed(1)}% of a whole model's bytes (int8 with a scale per tensor); the rebuilt weights are within half an int8 step of each tensor's change of the exact ones (tested in server/test/compression and server/test/integration).`,
    '',
    ...plots,
    '',
  ].join('\n');
  writeFileSync(join(root, 'bench', 'results', 'compression.md'), report);
  console.log(report);
}

runSimulations();
await writeReport();
