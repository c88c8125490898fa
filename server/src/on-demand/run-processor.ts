/**
 * `flock processor`: runs one event processor until SIGTERM or SIGINT (then it finishes the requests
 * in hand) or until the broker connection is lost (exit 1: a supervisor restarts it, and the broker
 * has already handed its unacknowledged requests to the other processors).
 */
import { ModelSource } from './model-source.js';
import { startMetricsEndpoint, type MetricsEndpoint } from './processor-metrics-endpoint.js';
import { OnDemandProcessor, type ProcessorOptions } from './processor.js';

export interface ProcessorCommandOptions extends Omit<ProcessorOptions, 'source'> {
  coordinatorUrl: string;
  token: string;
  /** Serve Prometheus metrics on this address (port 0: any free one); absent: none. */
  metricsEndpoint?: { host: string; port: number };
}

export interface ProcessorIO {
  stderr(text: string): void;
}

export async function runProcessor(options: ProcessorCommandOptions, io: ProcessorIO): Promise<number> {
  const { coordinatorUrl, token, metricsEndpoint, ...rest } = options;
  const processor = new OnDemandProcessor({ ...rest, source: new ModelSource(coordinatorUrl, token) });
  // The inference threads do not hold the process open (they are unref'd for the coordinator's sake); this does, until the end.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let endpoint: MetricsEndpoint | null = null;
  try {
    if (metricsEndpoint) {
      try {
        endpoint = await startMetricsEndpoint(processor.metrics, { ...metricsEndpoint, token });
      } catch (error) {
        io.stderr(
          `error: the metrics endpoint could not listen on ${metricsEndpoint.host}:${metricsEndpoint.port}: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        return 1;
      }
      io.stderr(`metrics: ${endpoint.url} (operator token)\n`);
    }
    return await run(processor, io);
  } finally {
    clearInterval(keepAlive);
    await endpoint?.close();
  }
}

async function run(processor: OnDemandProcessor, io: ProcessorIO): Promise<number> {
  try {
    await processor.start();
  } catch (error) {
    io.stderr(`error: the event processor could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    await processor.stop(0).catch(() => undefined);
    return 1;
  }
  const ending = await new Promise<'signal' | Error>((resolve) => {
    const onSignal = (): void => resolve('signal');
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    processor.lost.catch((error: Error) => resolve(error));
  });
  if (ending === 'signal') {
    await processor.stop();
    return 0;
  }
  io.stderr(`error: ${ending.message}; unacknowledged requests go back to the queue\n`);
  await processor.stop(0).catch(() => undefined);
  return 1;
}
