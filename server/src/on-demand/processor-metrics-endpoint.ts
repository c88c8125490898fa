/**
 * An event processor's Prometheus endpoint (`flock processor --metrics-port`): GET /metrics, behind
 * the operator token like the coordinator's, in the text format prom-client writes. Processors are
 * separate processes, each scraped on its own; the counters are read from ProcessorMetrics at
 * scrape time, so nothing is counted twice.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { bearerFromHeader, tokenMatches } from '../auth/tokens.js';
import { DEAD_LETTER_REASONS } from '../contract/index.js';
import type { ProcessorMetrics } from './processor-metrics.js';

export interface MetricsEndpoint {
  url: string;
  close(): Promise<void>;
}

/** A registry whose values come from `metrics` when scraped. */
export function processorRegistry(metrics: ProcessorMetrics): Registry {
  const registry = new Registry();
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  counter('flock_processor_requests_received_total', 'Requests taken from the queue', () => metrics.received);
  counter(
    'flock_processor_requests_redelivered_total',
    'Requests the broker had delivered before (to a processor that died or disconnected)',
    () => metrics.redelivered,
  );
  counter('flock_processor_replies_total', 'Replies published, confirmed by the broker and their requests acknowledged', () => metrics.replied);
  counter('flock_processor_requests_requeued_total', 'Requests handed back to the queue (a failed prediction or an unconfirmed reply)', () => metrics.requeued);
  counter('flock_processor_batches_total', 'Predictions run (each a batch of rows)', () => metrics.batches);
  counter('flock_processor_batched_rows_total', 'Rows predicted in batches', () => metrics.batchedRows);
  counter('flock_processor_version_switches_total', 'Switches to a newer model version', () => metrics.versionSwitches);
  new Counter({
    name: 'flock_processor_dead_lettered_total',
    help: 'Requests moved to the dead-letter queue, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      const { deadLetterReasons } = metrics.snapshot();
      for (const reason of DEAD_LETTER_REASONS) this.inc({ reason }, deadLetterReasons[reason] ?? 0);
    },
  });
  new Gauge({
    name: 'flock_processor_in_flight',
    help: 'Requests taken and not yet settled',
    registers: [registry],
    collect() {
      this.set(metrics.inFlight);
    },
  });
  new Gauge({
    name: 'flock_processor_model_version',
    help: 'The model version being served (absent before the first one loads)',
    registers: [registry],
    collect() {
      this.reset();
      if (metrics.currentVersion !== null) this.set(metrics.currentVersion);
    },
  });
  return registry;
}

/** Serves GET /metrics on `host:port` (port 0: any free one); every other request gets 404, a missing or wrong token 401. */
export async function startMetricsEndpoint(metrics: ProcessorMetrics, options: { host: string; port: number; token: string }): Promise<MetricsEndpoint> {
  const registry = processorRegistry(metrics);
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    if (!tokenMatches(bearerFromHeader(request.headers.authorization), options.token)) {
      response.writeHead(401, { 'Content-Type': 'text/plain', 'WWW-Authenticate': 'Bearer' }).end('operator token required\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      () => response.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
