// Poisoning with bounded influence (issue 10, docs/SECURITY.md "Bounded influence"): FedAvg on the
// IID 2NN of McMahan et al. 2017 (K=100, C=0.1, E=1, B=10, client lr 0.1, an untrained 2NN), 60
// rounds, with the coordinator's default settings, against
//   - a `scaling` attacker: 20% of the clients send their delta times -10 and claim 1e6 examples
//     (model replacement, Bagdasaryan et al. 2020);
//   - a `sybil` attacker: 20% of the clients are identities behind one address, each sending its
//     delta times -4;
// and the same attacks with the defenses off (`--defenses off`: no example cap, no norm bound, no
// per-address cap), to show what they do without them. Goal: with the defaults, test accuracy after
// 60 rounds within 2 points of the attack-free run.
// Writes bench/results/poisoning.md (table, command) and bench/results/poisoning.svg.
// Usage: pnpm bench:poisoning [--only name,name] [--rounds N] [--examples-per-client N] [--seed S] [--report-only]
// Build first (pnpm build).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { learningCurvesSvg, type SimulationSummary } from '../server/src/simulation/report.js';
import { curve, paperArgs, percent, readResult, root, simulate } from './lib/simulate.js';

const { values } = parseArgs({
  options: {
    'report-only': { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string', default: '60' },
    // 300 of MNIST's 600 per client: half the training time per round, so that the five runs fit in
    // minutes on two shared cores. The comparison is between runs of the same setting.
    'examples-per-client': { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
  },
});

const FRACTION = 0.2;
const GOAL_POINTS = 2;
const resultsDir = join(root, 'bench', 'results', 'poisoning');

interface Run {
  name: string;
  label: string;
  attack: 'scaling' | 'sybil' | null;
  defenses: boolean;
}

const RUNS: Run[] = [
  { name: 'clean', label: 'no attack', attack: null, defenses: true },
  { name: 'scaling', label: '20% scaling', attack: 'scaling', defenses: true },
  { name: 'sybil', label: '20% sybil', attack: 'sybil', defenses: true },
  { name: 'scaling-off', label: '20% scaling, defenses off', attack: 'scaling', defenses: false },
  { name: 'sybil-off', label: '20% sybil, defenses off', attack: 'sybil', defenses: false },
  // Not run by default (--only clean-off): what the defenses cost honest training.
  { name: 'clean-off', label: 'no attack, defenses off', attack: null, defenses: false },
];
const DEFAULT_RUNS = RUNS.filter((run) => run.name !== 'clean-off');

function argsOf(run: Run): string[] {
  return [
    ...paperArgs({ partition: 'iid', seed: values.seed }),
    '--strategy',
    'fedavg',
    '--rounds',
    values.rounds,
    '--examples-per-client',
    values['examples-per-client'],
    '--defenses',
    run.defenses ? 'on' : 'off',
    ...(run.attack ? ['--byzantine', String(FRACTION), '--attack', run.attack] : []),
  ];
}

function runSimulations(): void {
  const only = values.only ? new Set(values.only.split(',')) : null;
  for (const run of only ? RUNS.filter((r) => only.has(r.name)) : DEFAULT_RUNS) {
    const started = performance.now();
    simulate(run.name, argsOf(run), resultsDir);
    console.log(`${run.name}: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
}

// ---------------------------------------------------------------- report
const sum = (result: SimulationSummary, pick: (row: SimulationSummary['rounds'][number]) => number): number =>
  result.rounds.reduce((n, row) => n + pick(row), 0);

function row(run: Run, result: SimulationSummary, clean: SimulationSummary | null): string {
  const last = result.rounds.at(-1)!;
  const gap = clean ? ((clean.rounds.at(-1)!.accuracy - last.accuracy) * 100).toFixed(2) : '-';
  const goal = run.defenses && run.attack && clean ? (Number(gap) <= GOAL_POINTS ? 'yes' : '**no**') : '';
  const failed = result.rounds.filter((r) => r.status !== 'committed').length;
  const bounds = result.rounds.map((r) => r.updateBound).filter((b): b is number => b !== null);
  const bound = bounds.length ? `${Math.min(...bounds).toFixed(2)} – ${Math.max(...bounds).toFixed(2)}` : 'off';
  return (
    `| ${run.label} | ${run.defenses ? 'on' : 'off'} | ${result.rounds.length} | ${percent(last.accuracy)} | ${gap} | ${goal} | ` +
    `${sum(result, (r) => r.poisoned)} / ${sum(result, (r) => r.accepted)} | ${sum(result, (r) => r.clipped ?? 0)} | ${sum(result, (r) => r.clamped ?? 0)} | ` +
    `${bound} | ${failed} | ${result.totalSeconds.toFixed(0)} s | [csv](poisoning/${run.name}.csv) |`
  );
}

async function writeReport(): Promise<void> {
  const loaded = RUNS.flatMap((run) => {
    const result = readResult(resultsDir, run.name);
    return result ? [{ run, result }] : [];
  });
  const clean = readResult(resultsDir, 'clean');
  const command = `pnpm bench:poisoning --rounds ${values.rounds} --examples-per-client ${values['examples-per-client']} --seed ${values.seed}`;
  const lines = [
    '# Poisoning with bounded influence',
    '',
    `FedAvg, IID MNIST 2NN (K=100, C=0.1, E=1, B=10, client lr 0.1, ${values['examples-per-client']} examples per client, untrained 2NN),`,
    `${values.rounds} rounds, the coordinator's default settings; 20% of the clients attack:`,
    '',
    '- **scaling**: delta × −10, claims 1,000,000 examples (model replacement, Bagdasaryan et al. 2020);',
    '- **sybil**: identities all behind one address (127.0.0.66; honest devices each have their own loopback address), delta × −4.',
    '',
    '"Defenses off" (`--defenses off`) removes the example cap, the adaptive norm bound and the per-address cap.',
    `Goal: with the defenses, final test accuracy within ${GOAL_POINTS} points of the attack-free run.`,
    '',
    `Command: \`pnpm build && ${command}\` (the attack-free run with the defenses off, which measures what they cost honest training: add \`--only clean-off\`).`,
    'Selection is not seeded (the coordinator draws with crypto randomness): two runs of one command differ.',
    '',
    '| run | defenses | rounds | final accuracy | points below no attack | goal met | poisoned / accepted updates | clipped | examples clamped | norm bound (min – max) | failed rounds | time | data |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...loaded.map(({ run, result }) => row(run, result, clean)),
    '',
    '![accuracy by round](poisoning.svg)',
    '',
  ];
  writeFileSync(join(root, 'bench', 'results', 'poisoning.md'), lines.join('\n'));
  if (loaded.length > 0) {
    writeFileSync(
      join(root, 'bench', 'results', 'poisoning.svg'),
      await learningCurvesSvg(
        loaded.map(({ run, result }) => ({ label: run.label, points: curve(result) })),
        { title: 'FedAvg, 2NN, IID, 20% attackers: test accuracy and loss by round' },
      ),
    );
  }
  console.log(lines.join('\n'));
}

if (!values['report-only']) runSimulations();
await writeReport();
