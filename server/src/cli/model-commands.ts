/** `flock model list | show | rollback`. */
import type { Command } from 'commander';
import { renderModel, renderModelList } from './format.js';
import { parseVersion } from './option-parsers.js';
import type { CliSession } from './session.js';

export function addModelCommands(program: Command, session: CliSession): void {
  const model = program.command('model').description('list, inspect and roll back global model versions');

  model
    .command('list')
    .description('model versions, newest (current) first')
    .action(async (_options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const models = await ctx.client.listModels();
      session.print(ctx, models, () => renderModelList(models));
    });

  model
    .command('show')
    .description('metadata and metrics of one version')
    .argument('<version>', 'model version number', parseVersion)
    .action(async (version: number, _options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const meta = await ctx.client.getModel(version);
      session.print(ctx, meta, () => renderModel(meta));
    });

  model
    .command('rollback')
    .description('make an older version current again (recorded as a new version)')
    .argument('<version>', 'model version number to restore', parseVersion)
    .action(async (version: number, _options: unknown, command: Command) => {
      const ctx = session.connect(command);
      const meta = await ctx.client.rollbackModel(version);
      session.print(ctx, meta, () => `Rolled back to v${version}: the current version is now v${meta.version}.\n${renderModel(meta)}`);
    });
}
