/**
 * The `flock` operator CLI (`pnpm flock <command>`). It talks only to the coordinator's REST API,
 * through FlockApiClient. `runCli` runs one invocation in-process and returns the exit code:
 *
 *   0  success
 *   1  the operation failed (HTTP 4xx/5xx, a round that failed or was aborted under --wait)
 *   2  usage error (bad arguments or options, an invalid URL, no operator token found)
 *   3  the coordinator cannot be reached
 */
import { Command, CommanderError } from 'commander';
import { ApiError, ConnectionError } from './api-client.js';
import { addDpCommands } from './dp-commands.js';
import { addLogCommand } from './log-command.js';
import { addModelCommands } from './model-commands.js';
import { addPrecomputeCommands } from './precompute-commands.js';
import { addProcessorCommand } from './processor-command.js';
import { addRoundCommands } from './round-commands.js';
import { CliSession, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, UsageError, type CliIO } from './session.js';
import { addStatusCommand } from './status-command.js';

export type { CliIO } from './session.js';

function buildProgram(session: CliSession, io: CliIO): Command {
  const program = new Command('flock')
    .description('Operate a Flock coordinator through its REST API.')
    .option('--url <url>', 'coordinator base URL (default: $FLOCK_URL, else http://localhost:$PORT, PORT defaulting to 8080)')
    .option(
      '--token <token>',
      'operator token (default: $FLOCK_OPERATOR_TOKEN, else the file $FLOCK_DATA_DIR/operator-token, FLOCK_DATA_DIR defaulting to ./data)',
    )
    .option('--json', 'print the raw JSON responses instead of tables')
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nExit codes: 0 ok, 1 operation failed, 2 usage error (or no operator token), 3 coordinator unreachable.');
  addStatusCommand(program, session);
  addRoundCommands(program, session);
  addModelCommands(program, session);
  addDpCommands(program, session);
  addLogCommand(program, session);
  addPrecomputeCommands(program, session);
  addProcessorCommand(program, session);
  return program;
}

/** The exit code of a failed invocation, after telling the operator what went wrong. */
function exitCodeOf(error: unknown, session: CliSession): number {
  if (error instanceof CommanderError) {
    // Commander already printed the message (or the help). Help and --version exit 0.
    return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (error instanceof UsageError) {
    session.err(`error: ${error.message}`);
    return EXIT_USAGE;
  }
  if (error instanceof ConnectionError) {
    session.err(
      `error: cannot reach the coordinator at ${error.url} (${error.reason}).\n` +
        'Is it running? Start it with `pnpm start`, or point --url / FLOCK_URL at it.',
    );
    return EXIT_UNREACHABLE;
  }
  if (error instanceof ApiError) {
    session.err(`error: ${error.message} (HTTP ${error.status} from ${error.method} ${error.path})`);
    if (error.status === 401 || error.status === 403) {
      session.err(`The coordinator refused the operator token from ${session.tokenSource}. Check that it matches the coordinator's.`);
    }
    return EXIT_FAILED;
  }
  session.err(`error: ${error instanceof Error ? error.message : String(error)}`);
  return EXIT_FAILED;
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const session = new CliSession(io);
  try {
    await buildProgram(session, io).parseAsync([...argv], { from: 'user' });
    return session.exitCode;
  } catch (error) {
    return exitCodeOf(error, session);
  }
}
