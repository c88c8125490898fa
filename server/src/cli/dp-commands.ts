/** `flock dp epsilon | noise`: privacy planning for DP rounds, offline (no coordinator needed), like TF Privacy's compute_dp_sgd_privacy. */
import { InvalidArgumentError, type Command } from 'commander';
import { epsilonOfRounds, noiseForEpsilon } from '../privacy/rdp.js';
import { parseIntOption, parseNumberOption } from './option-parsers.js';
import type { CliSession } from './session.js';

/** A probability in (0, 1], or (0, 1) when `belowOne`. */
function parseProbability(belowOne: boolean) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !(n > 0 && (belowOne ? n < 1 : n <= 1))) {
      throw new InvalidArgumentError(`expected a number in (0, 1${belowOne ? ')' : ']'}, got "${value}"`);
    }
    return n;
  };
}

const ACCOUNTING =
  'RDP of the Poisson-sampled Gaussian mechanism (Mironov et al. 2019), composed over the rounds, converted to (ε, δ) as in Balle et al. 2020; ' +
  'user-level when each device is sampled independently with this rate and its update clipped to C with noise z·C on the sum.';

function addScheduleOptions(command: Command): Command {
  return command
    .requiredOption(
      '--sampling-rate <q>',
      'probability that a round includes a given device (expected participants / the devices it samples from)',
      parseProbability(false),
    )
    .requiredOption('--rounds <t>', 'rounds in the model lineage', parseIntOption(0))
    .requiredOption('--delta <d>', 'δ, e.g. 1e-5 (well below 1 / the number of devices)', parseProbability(true));
}

export function addDpCommands(program: Command, session: CliSession): void {
  const dp = program.command('dp').description("differential privacy: plan DP rounds offline (epsilon, noise), or read a coordinator's ledger (status)");

  dp.command('status')
    .description("the coordinator's privacy ledger: ε spent by its DP rounds, the budget, and whether the current version is covered")
    .action(async (_options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const status = await ctx.client.privacy();
      session.print(ctx, status, () => {
        const budget = status.budget
          ? `budget ε = ${status.budget.epsilon} (remaining ${status.remaining!.toPrecision(4)})`
          : 'no budget (FLOCK_DP_EPSILON_BUDGET unset)';
        const covered =
          status.currentProtected === null
            ? 'unknown (stored before privacy accounts)'
            : status.currentProtected
              ? 'yes: only DP rounds in its lineage'
              : 'no: its lineage has rounds without DP';
        return [
          `spent: ε = ${status.spent.epsilon.toPrecision(6)} at δ = ${status.delta} over ${status.spent.dpRounds} DP round(s)`,
          budget,
          `current version ${status.currentVersion ?? '-'} covered: ${covered}`,
        ].join('\n');
      });
    });

  addScheduleOptions(
    dp
      .command('epsilon')
      .description('the ε at δ that rounds of a given noise multiplier and sampling rate spend')
      .requiredOption('--noise-multiplier <z>', 'noise standard deviation / clipping norm', parseNumberOption({ positive: false })),
  ).action((options: { noiseMultiplier: number; samplingRate: number; rounds: number; delta: number }, command: Command) => {
    const { noiseMultiplier, samplingRate, rounds, delta } = options;
    const { epsilon, order } = epsilonOfRounds([{ noiseMultiplier, samplingRate, rounds }], delta);
    const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
    if (json) session.out(JSON.stringify({ epsilon, delta, order, noiseMultiplier, samplingRate, rounds }));
    else
      session.out(
        `ε = ${epsilon.toPrecision(6)} at δ = ${delta} after ${rounds} round(s) with z = ${noiseMultiplier}, q = ${samplingRate} (best RDP order ${order}).\n${ACCOUNTING}`,
      );
  });

  addScheduleOptions(
    dp
      .command('noise')
      .description('the smallest noise multiplier whose rounds stay within ε at δ')
      .requiredOption('--epsilon <e>', 'the ε to stay within', parseNumberOption({ positive: true })),
  ).action((options: { epsilon: number; samplingRate: number; rounds: number; delta: number }, command: Command) => {
    const { epsilon, samplingRate, rounds, delta } = options;
    const noiseMultiplier = noiseForEpsilon({ epsilon, delta, samplingRate, rounds });
    const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
    if (json) session.out(JSON.stringify({ noiseMultiplier, epsilon, delta, samplingRate, rounds }));
    else
      session.out(
        `z = ${noiseMultiplier.toPrecision(6)} keeps ${rounds} round(s) at q = ${samplingRate} within ε = ${epsilon} at δ = ${delta}.\n${ACCOUNTING}`,
      );
  });
}
