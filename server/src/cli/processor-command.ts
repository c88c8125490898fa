/**
 * `flock processor`: an event processor of model-on-demand (server/src/on-demand/). It reads the
 * model from the coordinator's REST API (so it takes `--url` and the operator token like every
 * command) and its requests from RabbitMQ (`--amqp-url` or FLOCK_AMQP_URL). The processor's code is
 * loaded only when the command runs (it starts TensorFlow.js worker threads).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { ON_DEMAND_DEFAULT_QUEUE, VERSIONS_EXCHANGE } from '../contract/index.js';
import { parseIntOption, parseNumberOption, parseVersion } from './option-parsers.js';
import { resolveBaseUrl, resolveOperatorToken, UsageError, type CliSession } from './session.js';

interface ProcessorCliOptions {
  version?: number;
  follow?: boolean;
  queue: string;
  amqpUrl?: string;
  versionsExchange?: string;
  prefetch: number;
  maxBatch: number;
  maxDelayMs: number;
  workers: number;
  pollMs: number;
  metricsMs: number;
  metricsPort?: number;
  metricsHost: string;
}

function parseName(value: string): string {
  if (!/^[A-Za-z0-9._:-]{1,200}$/.test(value)) throw new InvalidArgumentError(`expected 1-200 letters, digits and . _ : -, got "${value}"`);
  return value;
}

export function addProcessorCommand(program: Command, session: CliSession): void {
  program
    .command('processor')
    .description('run a model-on-demand event processor: predict the requests of a RabbitMQ queue in batches and reply to each requester')
    .option('--version <n>', 'serve this version only (pinned)', parseVersion)
    .option('--follow', 'serve the current version and switch to each new one without restarting (the default)')
    .option('--queue <name>', 'the request queue', parseName, ON_DEMAND_DEFAULT_QUEUE)
    .option('--amqp-url <url>', 'the broker (default: $FLOCK_AMQP_URL)')
    .option(
      '--versions-exchange <name>',
      `the exchange new versions are announced on (default: $FLOCK_AMQP_VERSIONS_EXCHANGE, else ${VERSIONS_EXCHANGE})`,
      parseName,
    )
    .option('--prefetch <n>', 'unacknowledged requests held at most (the batching window)', parseIntOption(1), 64)
    .option('--max-batch <n>', 'rows per prediction at most', parseIntOption(1), 64)
    .option('--max-delay-ms <ms>', 'how long a free worker waits for a batch to fill', parseNumberOption({ positive: false }), 5)
    .option('--workers <n>', 'inference worker threads', parseIntOption(1), 1)
    .option('--poll-ms <ms>', 'following: how often the current version is polled besides the announcements', parseIntOption(100), 5000)
    .option('--metrics-ms <ms>', 'how often the metrics are logged', parseIntOption(100), 10_000)
    .option(
      '--metrics-port <port>',
      'serve Prometheus metrics at http://HOST:PORT/metrics, behind the operator token (0: any free port)',
      parseIntOption(0, 65_535),
    )
    .option('--metrics-host <host>', 'the address --metrics-port listens on', '127.0.0.1')
    .action(async (options: ProcessorCliOptions, command: Command) => {
      if (options.version !== undefined && options.follow) throw new UsageError('--version and --follow exclude each other');
      const globals = command.optsWithGlobals<{ url?: string; token?: string }>();
      const amqpUrl = options.amqpUrl ?? session.env.FLOCK_AMQP_URL;
      if (!amqpUrl) throw new UsageError('no broker: pass --amqp-url or set FLOCK_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672)');
      if (!/^amqps?:\/\//.test(amqpUrl)) throw new UsageError('the broker URL must start with amqp:// or amqps://');
      const coordinatorUrl = globals.url ?? session.env.FLOCK_COORDINATOR_URL ?? resolveBaseUrl(undefined, session.env);
      const { token } = resolveOperatorToken(globals.token, session.env, session.cwd);
      const { runProcessor } = await import('../on-demand/run-processor.js');
      session.exitCode = await runProcessor(
        {
          coordinatorUrl,
          token,
          amqpUrl,
          queue: options.queue,
          versionsExchange: options.versionsExchange ?? (session.env.FLOCK_AMQP_VERSIONS_EXCHANGE || VERSIONS_EXCHANGE),
          version: options.version ?? 'follow',
          prefetch: options.prefetch,
          maxBatch: options.maxBatch,
          maxDelayMs: options.maxDelayMs,
          workers: options.workers,
          pollMs: options.pollMs,
          metricsEveryMs: options.metricsMs,
          ...(options.metricsPort === undefined ? {} : { metricsEndpoint: { host: options.metricsHost, port: options.metricsPort } }),
        },
        { stderr: (text) => session.err(text) },
      );
    });
}
