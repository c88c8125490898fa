/**
 * Real RabbitMQ and real event processor processes for the model-on-demand tests. No skipping: a
 * broker that is down fails the tests (`.ci/run` starts RabbitMQ when it is down).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { connect, type ChannelModel } from 'amqplib';
import { queuesOf } from '../../src/on-demand/topology.js';
import { OPERATOR_TOKEN } from '../support/coordinator.js';

export const AMQP_URL = process.env.FLOCK_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

/** A queue (or exchange) name of its own per test, so that tests never share one. */
export function uniqueName(what: string): string {
  return `flock.test.${what}.${randomUUID().slice(0, 8)}`;
}

export interface ProcessorChild {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal) once the process ended. */
  exited: Promise<number | string | null>;
}

/** Starts `node server/dist/cli/main.js processor ...` and waits until it consumes. */
export async function startProcessor(coordinatorUrl: string, queue: string, args: string[] = []): Promise<ProcessorChild> {
  if (!existsSync(CLI)) throw new Error('build the server first (pnpm build): server/dist/cli/main.js is missing');
  const child = spawn(
    process.execPath,
    [CLI, 'processor', '--url', coordinatorUrl, '--token', OPERATOR_TOKEN, '--amqp-url', AMQP_URL, '--queue', queue, '--metrics-ms', '500', ...args],
    { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<number | string | null>((resolveExit) => child.once('exit', (code, signal) => resolveExit(code ?? signal)));
  await new Promise<void>((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`the processor did not start:\n${output}`)), 60_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('event processor consuming')) {
        clearTimeout(timer);
        resolveStart();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited
      .then((code) => {
        clearTimeout(timer);
        reject(new Error(`the processor exited (${code}) before consuming:\n${output}`));
      })
      .catch(() => undefined);
  });
  return { child, output: () => output, exited };
}

/** SIGKILL, and wait for the process to be gone. */
export async function kill9(processor: ProcessorChild): Promise<void> {
  if (processor.child.exitCode === null && processor.child.signalCode === null) processor.child.kill('SIGKILL');
  await processor.exited;
}

/** The last metrics line a processor logged. */
export function lastMetrics(processor: ProcessorChild): Record<string, unknown> | null {
  const lines = processor
    .output()
    .split('\n')
    .filter((line) => line.includes('"event processor metrics"'));
  const last = lines.at(-1);
  return last ? ((JSON.parse(last) as { metrics: Record<string, unknown> }).metrics ?? null) : null;
}

export async function brokerConnection(): Promise<ChannelModel> {
  try {
    return await connect(AMQP_URL);
  } catch (error) {
    throw new Error(`RabbitMQ is not reachable at ${AMQP_URL} (start it: rabbitmq-server -detached): ${(error as Error).message}`);
  }
}

/** Deletes a test's queues and exchanges. */
export async function deleteTopology(connection: ChannelModel, queue: string): Promise<void> {
  const channel = await connection.createChannel();
  const names = queuesOf(queue);
  await channel.deleteQueue(names.requests);
  await channel.deleteQueue(names.deadLetters);
  await channel.deleteExchange(names.deadLetterExchange);
  await channel.close();
}

/** A row of the tiny model's 16 inputs, different per `seed`. */
export function tinyInput(seed: number, rows = 1): Float32Array {
  return Float32Array.from({ length: 16 * rows }, (_, i) => Math.sin(seed * 31 + i) * 0.5 + 0.5);
}
