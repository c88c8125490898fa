/** `flock round start | list | show | cancel`. */
import { Option, type Command } from 'commander';
import { isRoundFinished } from '@flock/client-sdk/protocol';
import { DP_NOISE_SOURCES, type RoundDetails, type RoundRecord, type StartRoundRequest } from '../contract/index.js';
import { renderRound, renderRoundList } from './format.js';
import { parseIntOption, parseJsonObjectOption, parseNumberOption } from './option-parsers.js';
import { EXIT_FAILED, UsageError, type CliSession, type CommandContext } from './session.js';

/** The options of `round start`, each mapped onto a field of the POST /api/rounds body (left out: the coordinator's default). */
const START_OPTIONS: { flags: string; description: string; parse?: (value: string) => unknown; field: keyof StartRoundRequest }[] = [
  { flags: '--min-clients <n>', description: 'valid updates needed to commit', parse: parseIntOption(1), field: 'minClients' },
  { flags: '--target-clients <n>', description: 'updates wanted', parse: parseIntOption(1), field: 'targetClients' },
  {
    flags: '--over-selection <x>',
    description: 'selection factor over the target (e.g. 1.3)',
    parse: parseNumberOption({ positive: true }),
    field: 'overSelection',
  },
  {
    flags: '--selection-timeout <seconds>',
    description: 'how long to wait for enough eligible devices',
    parse: parseNumberOption({ positive: true }),
    field: 'selectionTimeoutSeconds',
  },
  {
    flags: '--deadline <seconds>',
    description: 'reporting deadline, from configuration',
    parse: parseNumberOption({ positive: true }),
    field: 'deadlineSeconds',
  },
  { flags: '--epochs <n>', description: 'local epochs', parse: parseIntOption(1), field: 'epochs' },
  { flags: '--batch-size <n>', description: 'local batch size', parse: parseIntOption(1), field: 'batchSize' },
  { flags: '--learning-rate <x>', description: 'local SGD learning rate', parse: parseNumberOption({ positive: true }), field: 'learningRate' },
  { flags: '--proximal-mu <x>', description: 'FedProx proximal term (0 = plain SGD)', parse: parseNumberOption({ positive: false }), field: 'proximalMu' },
  { flags: '--strategy <name>', description: 'aggregation strategy, e.g. fedavg, fedyogi, krum (docs/STRATEGIES.md)', field: 'strategy' },
  {
    flags: '--strategy-options <json>',
    description: 'strategy options as a JSON object, e.g. \'{"serverLearningRate":0.03}\'',
    parse: parseJsonObjectOption,
    field: 'strategyOptions',
  },
  {
    flags: '--personalization <json>',
    description:
      'the devices\' personalization for this round, e.g. \'{"method":"personal-layers","personalLayers":["output"]}\' or \'{"method":"ditto","dittoLambda":0.1}\'',
    parse: parseJsonObjectOption,
    field: 'personalization',
  },
  {
    flags: '--max-update-norm <x>',
    description: 'reject updates whose L2 norm is above this',
    parse: parseNumberOption({ positive: true }),
    field: 'maxUpdateNorm',
  },
  {
    flags: '--secure-aggregation [json]',
    description:
      'secure aggregation: the coordinator learns only the sum (alone: the defaults; or settings as JSON, e.g. \'{"clipNorm":5,"thresholdFraction":0.6}\')',
    parse: (value: string) => parseJsonObjectOption(value),
    field: 'secureAggregation',
  },
];

/** `round start`'s DP-FedAvg options, all three or none: the round's `differentialPrivacy`. */
const DP_OPTIONS = [
  { flags: '--dp-noise-multiplier <z>', description: 'DP round: noise multiplier z (noise z·C on the sum; see pnpm flock dp)', key: 'noiseMultiplier' },
  { flags: '--dp-clip-norm <C>', description: 'DP round: the L2 norm every update is clipped to', key: 'clipNorm' },
  { flags: '--dp-sampling-rate <q>', description: 'DP round: the probability each eligible device is sampled (Poisson)', key: 'samplingRate' },
] as const;

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

function addStartCommand(round: Command, session: CliSession): void {
  const start = round.command('start').description('start a round (parameters left out take the coordinator defaults)');
  const fields: [attribute: string, field: keyof StartRoundRequest][] = [];
  for (const spec of START_OPTIONS) {
    const option = new Option(spec.flags, spec.description);
    if (spec.parse) option.argParser(spec.parse);
    start.addOption(option);
    fields.push([option.attributeName(), spec.field]);
  }
  for (const spec of DP_OPTIONS) start.addOption(new Option(spec.flags, spec.description).argParser(parseNumberOption({ positive: true })));
  start.addOption(
    new Option('--dp-adaptive-quantile <γ>', 'DP round: adaptive clipping towards this quantile of update norms (--dp-clip-norm is the first C)').argParser(
      parseNumberOption({ positive: true }),
    ),
  );
  start.addOption(
    new Option(
      '--dp-noise <source>',
      "DP round: who adds the noise: the coordinator ('central', the default) or the devices before masking ('distributed', with --secure-aggregation)",
    ).choices(DP_NOISE_SOURCES),
  );
  start
    .option('--wait', 'poll the round every second until it ends; exit 1 if it failed or was aborted')
    .action(async (options: Record<string, unknown>, command: Command) => {
      const ctx = session.connect(command);
      const body: Record<string, unknown> = {};
      for (const [attribute, field] of fields) if (options[attribute] !== undefined) body[field] = options[attribute];
      const dp = DP_OPTIONS.filter((spec) => options[new Option(spec.flags).attributeName()] !== undefined);
      if (dp.length > 0 && dp.length < DP_OPTIONS.length)
        throw new UsageError(`a DP round needs all of ${DP_OPTIONS.map((spec) => spec.flags.split(' ')[0]).join(', ')}`);
      if (dp.length > 0) body.differentialPrivacy = Object.fromEntries(dp.map((spec) => [spec.key, options[new Option(spec.flags).attributeName()]]));
      if (options.dpNoise !== undefined) {
        if (dp.length === 0) throw new UsageError('--dp-noise needs a DP round (--dp-noise-multiplier, --dp-clip-norm, --dp-sampling-rate)');
        Object.assign(body.differentialPrivacy as object, { noise: options.dpNoise });
      }
      if (options.dpAdaptiveQuantile !== undefined) {
        if (dp.length === 0) throw new UsageError('--dp-adaptive-quantile needs a DP round (--dp-noise-multiplier, --dp-clip-norm, --dp-sampling-rate)');
        Object.assign(body.differentialPrivacy as object, { adaptiveClipping: { targetQuantile: options.dpAdaptiveQuantile } });
      }
      const started = await ctx.client.startRound(body);
      if (options.wait !== true) {
        session.print(
          ctx,
          started,
          () => `Started round ${started.id} (${started.status}).\n${renderRound(started)}\nFollow it with: pnpm flock round show ${started.id}`,
        );
        return;
      }
      reportFinished(session, ctx, await waitForEnd(session, ctx, started));
    });
}

/** Polls the round until it ends, telling each state change on stderr. */
async function waitForEnd(session: CliSession, ctx: CommandContext, started: RoundRecord): Promise<RoundRecord | RoundDetails> {
  session.err(`Started round ${started.id} (${started.status}); waiting for it to end...`);
  await warnIfTooFewEligible(session, ctx, started);
  let current: RoundRecord | RoundDetails = started;
  while (!isRoundFinished(current.status)) {
    await sleep(session.pollIntervalMs);
    const next = await ctx.client.getRound(started.id);
    if (next.status !== current.status) {
      const progress = `${next.metrics.reported}/${next.metrics.selected} reported, ${next.metrics.accepted} accepted`;
      session.err(`round ${started.id}: ${current.status} -> ${next.status} (${progress})`);
    }
    current = next;
  }
  return current;
}

/** Says at once when the round cannot be selected yet, instead of a silent wait for the whole selection timeout. */
async function warnIfTooFewEligible(session: CliSession, ctx: CommandContext, started: RoundRecord): Promise<void> {
  if (started.status !== 'selecting') return;
  const { eligibleClients } = await ctx.client.status();
  const { minClients, selectionTimeoutMs } = started.params;
  if (eligibleClients >= minClients) return;
  session.err(
    `warning: ${eligibleClients} eligible device(s) connected, the round needs ${minClients} (minClients); ` +
      `it waits up to ${selectionTimeoutMs / 1000} s for more, then fails`,
  );
}

/** Prints the ended round; one that did not commit makes the invocation fail. */
function reportFinished(session: CliSession, ctx: CommandContext, finished: RoundRecord | RoundDetails): void {
  session.print(ctx, finished, () => renderRound(finished));
  if (finished.status !== 'committed') {
    session.err(`error: round ${finished.id} ${finished.status}${finished.error ? `: ${finished.error}` : ''}`);
    session.exitCode = EXIT_FAILED;
  } else if (!ctx.json) {
    session.out(`Round ${finished.id} committed model v${finished.committedVersion}.`);
  }
}

export function addRoundCommands(program: Command, session: CliSession): void {
  const round = program.command('round').description('start, list, inspect and cancel training rounds');
  addStartCommand(round, session);

  round
    .command('list')
    .description('recent rounds, newest first')
    .option('--limit <n>', 'how many rounds', parseIntOption(1), 20)
    .option('--offset <n>', 'skip this many of the newest rounds', parseIntOption(0))
    .action(async (options: { limit: number; offset?: number }, command: Command) => {
      const ctx = session.connect(command);
      const rounds = await ctx.client.listRounds({ limit: options.limit, offset: options.offset });
      session.print(ctx, rounds, () => renderRoundList(rounds));
    });

  round
    .command('show')
    .description('details of one round: parameters, rejected by reason, dropped, transitions')
    .argument('<id>', 'round id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const details = await ctx.client.getRound(id);
      session.print(ctx, details, () => renderRound(details));
    });

  round
    .command('cancel')
    .description('abort a round in flight')
    .argument('<id>', 'round id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const cancelled = await ctx.client.cancelRound(id);
      session.print(ctx, cancelled, () => `Round ${cancelled.id} is now ${cancelled.status}.\n${renderRound(cancelled)}`);
    });
}
