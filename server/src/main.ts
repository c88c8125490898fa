import { initNodeBackend } from '@flock/client-sdk/node';
import { ConfigError, loadConfig } from './config/config.js';
import { createCoordinator } from './coordinator.js';
import { logger } from './logging/logger.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const backend = await initNodeBackend();
  const coordinator = await createCoordinator(config);
  logger.info(
    {
      url: coordinator.url,
      dataDir: config.dataDir,
      database: config.databaseUrl ? 'postgresql' : 'sqlite',
      socketAdapter: config.redisUrl ? 'redis' : 'in-memory',
      tfBackend: backend,
      operatorToken: config.tokenSources.operator,
      clientToken: config.tokenSources.client,
      inferenceKey: config.serving.inferenceKeySource,
      enrolment: config.enrolment ? { issuer: config.enrolment.issuer, audience: config.enrolment.audience } : 'off',
    },
    'coordinator listening',
  );
  // Plain lines for a person at the terminal; tokens are never printed, only where they are.
  process.stderr.write(
    `\nFlock coordinator on ${coordinator.url}\n` +
      `  dashboard      ${coordinator.url}/dashboard\n` +
      `  API docs       ${coordinator.url}/api/docs (OpenAPI document: ${coordinator.url}/api/docs/openapi.json)\n` +
      `  operator token ${config.tokenSources.operator}\n` +
      `  inference     ${coordinator.url}/v2/models/global (inference key: ${config.serving.inferenceKeySource})\n` +
      (config.enrolment
        ? `  enrolment      on: device tokens from ${config.enrolment.issuer} (the client token is refused)\n\n`
        : `  client token   ${config.tokenSources.client}\n\n`),
  );
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down');
      coordinator.close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    // A person fixes these: one plain line per problem, all at once, no stack.
    process.stderr.write(`Flock coordinator: invalid configuration\n${error.problems.map((problem) => `  ${problem}\n`).join('')}`);
    process.exit(1);
  }
  logger.fatal({ err: error }, 'coordinator failed to start');
  process.exit(1);
});
