// Secure vs plain rounds over real sockets (issue 14): the simulator's SDK clients (worker threads,
// socket.io) against a real coordinator, 10, 50 and 100 devices all selected, the 2NN on MNIST,
// each size run plain and secure with the same seed and settings. Per arm: round wall time (start
// request to commit, median over the rounds), the coordinator's commit phase (where a secure
// round's unmasking runs), bytes up and down per accepted device as the coordinator counted them,
// and test accuracy after the same rounds. The in-process bench (bench/secagg.ts) has the device
// and coordinator CPU split per phase; this one shows what a whole round costs on the wire.
// Writes bench/results/secagg-rounds.md (and per-run CSV/JSON/SVG under bench/results/secagg-rounds/).
// Usage: pnpm build && pnpm bench:secagg-rounds [--devices 10,50,100] [--rounds 3] [--examples 300]
//        [--key-agreement P-256|X25519] [--report-only]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RoundRow, SimulationSummary } from '../server/src/simulation/report.js';
import { machineInfo } from './lib/measure.js';
import { paperArgs, readResult, root, simulate } from './lib/simulate.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '10,50,100' },
    rounds: { type: 'string', default: '3' },
    examples: { type: 'string', default: '300' },
    'key-agreement': { type: 'string', default: 'P-256' },
    'report-only': { type: 'boolean', default: false },
  },
});
const SIZES = values.devices.split(',').map(Number);
const resultsDir = join(root, 'bench', 'results', 'secagg-rounds');
const ARMS = ['plain', 'secure'] as const;
type Arm = (typeof ARMS)[number];

const nameOf = (devices: number, arm: Arm): string => `${devices}-${arm}`;

function argsOf(devices: number, arm: Arm): string[] {
  return [
    ...paperArgs({ partition: 'iid', fraction: 1 }),
    '--clients',
    String(devices),
    '--examples-per-client',
    values.examples,
    '--rounds',
    values.rounds,
    // A device or two failing to fetch the model on these loaded cores must not fail a round of all n: commit from 90%.
    '--min-clients',
    String(Math.ceil(0.9 * devices)),
    // Secure rounds encode below maxExamplesPerUpdate (the simulator sets it to the examples per client): the same cap in both arms.
    ...(arm === 'secure' ? ['--secure-aggregation', '--secagg-key-agreement', values['key-agreement']] : []),
  ];
}

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface ArmSummary {
  roundSeconds: number;
  commitMs: number;
  bytesUpPerDevice: number;
  bytesDownPerDevice: number;
  accepted: number;
  accuracy: number;
}

function summarize(result: SimulationSummary): ArmSummary {
  const committed: RoundRow[] = result.rounds.filter((row) => row.status === 'committed');
  const accepted = committed.reduce((sum, row) => sum + row.accepted, 0);
  return {
    roundSeconds: median(committed.map((row) => row.seconds)),
    commitMs: median(committed.map((row) => row.commitMs ?? NaN)),
    bytesUpPerDevice: committed.reduce((sum, row) => sum + row.bytesUp, 0) / accepted,
    bytesDownPerDevice: committed.reduce((sum, row) => sum + row.bytesDown, 0) / accepted,
    accepted: accepted / Math.max(1, committed.length),
    accuracy: committed.at(-1)?.accuracy ?? NaN,
  };
}

if (!values['report-only']) {
  for (const devices of SIZES) for (const arm of ARMS) simulate(nameOf(devices, arm), argsOf(devices, arm), resultsDir);
}

const fmt = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toLocaleString('en', { maximumFractionDigits: digits }) : '–');
const lines = [
  '# Secure vs plain rounds over sockets',
  '',
  `\`pnpm build && pnpm bench:secagg-rounds --devices ${values.devices} --rounds ${values.rounds} --examples ${values.examples} --key-agreement ${values['key-agreement']}\`: the simulator's SDK clients (2 worker threads, socket.io) and a real coordinator in one process group, every device selected each round (a round commits from 90% of them), IID MNIST, ${values.examples} examples per device, E = 1, B = 10, the untrained 2NN, same seed in both arms. ${machineInfo().cpus} cores, Node ${machineInfo().node}; devices, coordinator and anything else running share them, so read the secure/plain ratios of one size.`,
  '',
  '| devices | arm | rounds committed | accepted / round | round wall s (median) | secure / plain | commit phase ms (median) | bytes up / device | × plain | bytes down / device | test accuracy after the last round |',
  '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];
for (const devices of SIZES) {
  const results = Object.fromEntries(ARMS.map((arm) => [arm, readResult(resultsDir, nameOf(devices, arm))])) as Record<Arm, SimulationSummary | null>;
  if (!results.plain || !results.secure) continue;
  const plain = summarize(results.plain);
  for (const arm of ARMS) {
    const result = results[arm]!;
    const row = summarize(result);
    const committed = result.rounds.filter((r) => r.status === 'committed').length;
    lines.push(
      `| ${devices} | ${arm} | ${committed} of ${result.rounds.length} | ${fmt(row.accepted)} | ${fmt(row.roundSeconds)} | ${arm === 'secure' ? `${fmt(row.roundSeconds / plain.roundSeconds, 2)}×` : ''} | ${fmt(row.commitMs, 0)} | ${fmt(row.bytesUpPerDevice, 0)} | ${arm === 'secure' ? `${fmt(row.bytesUpPerDevice / plain.bytesUpPerDevice, 4)}×` : ''} | ${fmt(row.bytesDownPerDevice, 0)} | ${fmt(row.accuracy * 100, 2)}% |`,
    );
  }
}
const report = `${lines.join('\n')}\n`;
writeFileSync(join(root, 'bench', 'results', 'secagg-rounds.md'), report);
console.log(report);
