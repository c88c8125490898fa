/** `flock status`. */
import type { Command } from 'commander';
import type { ModelVersionDetail } from '../contract/index.js';
import { ApiError, type FlockApiClient } from './api-client.js';
import { renderStatus, type StatusView } from './format.js';
import type { CliSession } from './session.js';

/** The current version, or null before the first one exists (404). */
async function currentModelOrNull(client: FlockApiClient): Promise<ModelVersionDetail | null> {
  try {
    return await client.currentModel();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

export function addStatusCommand(program: Command, session: CliSession): void {
  program
    .command('status')
    .description('coordinator URL, current model version and its test accuracy, clients, active round')
    .action(async (_options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const status = await ctx.client.status();
      const model = await currentModelOrNull(ctx.client);
      const [latestRound = null] = await ctx.client.listRounds({ limit: 1 });
      const view: StatusView = { url: ctx.url, status, model, latestRound };
      session.print(ctx, view, () => renderStatus(view));
    });
}
