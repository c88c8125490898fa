import type { LoggerService } from '@nestjs/common';
import { pino, type Logger } from 'pino';
import { isLogLevel } from '../config/environment.js';

/**
 * Structured JSON logs. Callers pass ids (roundId, clientId, version) as fields; never tokens,
 * weights or examples. The redact list is a second line of defence for auth headers.
 */
export const logger: Logger = pino({
  // An unknown LOG_LEVEL must not throw here, at import: loadConfig refuses it with the allowed levels.
  level: isLogLevel(process.env.LOG_LEVEL) ? process.env.LOG_LEVEL : 'info',
  base: { service: 'flock-coordinator' },
  redact: { paths: ['token', 'auth.token', 'headers.authorization', 'req.headers.authorization'], censor: '[redacted]' },
});

export function moduleLogger(module: string): Logger {
  return logger.child({ module });
}

/** Routes Nest's own messages (bootstrap, routes) into the same pino stream. */
export class PinoNestLogger implements LoggerService {
  private readonly pino = moduleLogger('nest');
  log(message: unknown, context?: unknown): void {
    this.pino.debug({ context }, String(message));
  }
  warn(message: unknown, context?: unknown): void {
    this.pino.warn({ context }, String(message));
  }
  error(message: unknown, trace?: unknown, context?: unknown): void {
    this.pino.error({ context, trace }, String(message));
  }
  debug(message: unknown, context?: unknown): void {
    this.pino.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: unknown): void {
    this.pino.trace({ context }, String(message));
  }
}

/**
 * Runs work that nobody awaits (timers, effects, event handlers): a rejection is logged with what
 * failed instead of ending the process as an unhandled rejection.
 */
export function runDetached(log: Logger, what: string, task: Promise<unknown>): void {
  task.catch((err: unknown) => log.error({ err }, `${what} failed`));
}
