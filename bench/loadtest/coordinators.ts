/**
 * The coordinators under load: P processes of the built coordinator, with the environment the
 * load test wants (model, pace steering, and for P > 1 the shared PostgreSQL and Redis), and what
 * the load test reads from them (/metrics, rounds, RSS).
 */
import type { RoundDetails, RoundRecord } from '../../server/src/contract/index.js';
import { noKeepAliveFetch } from '../../server/src/simulation/http-fetch.js';
import { OPERATOR_TOKEN, startCoordinator, type CoordinatorProcess } from '../lib/coordinator-process.js';

export interface CoordinatorOptions {
  processes: number;
  /** model.json to register as version 1 (null: the default 2NN, trained on 600 MNIST examples at start). */
  initialModel: string | null;
  pace: boolean;
  /** How devices upload: to the upload listener (the default, which plans name) or over socket.io (FLOCK_UPLOAD_PORT=off). */
  uploads: 'listener' | 'socket';
  /** FLOCK_MAX_UPLOADS_PER_SECOND (null: the coordinator's default). */
  maxUploadsPerSecond: string | null;
  /** NODE_OPTIONS of the coordinator processes (e.g. --max-semi-space-size=64), null: none. */
  nodeOptions: string | null;
  /** Shared state for several processes (FLOCK_DATABASE_URL, FLOCK_REDIS_URL); required when processes > 1. */
  postgresUrl: string | null;
  redisUrl: string | null;
}

/**
 * Starts the processes one after the other (the first creates version 1; the others find it in
 * the shared database). Devices are spread over all of their URLs; the first runs the rounds.
 */
export async function startCoordinators(options: CoordinatorOptions): Promise<CoordinatorProcess[]> {
  if (options.processes > 1 && (!options.postgresUrl || !options.redisUrl)) {
    throw new Error('--processes > 1 needs --postgres URL and --redis URL: the processes share the database and the socket.io rooms');
  }
  const env: Record<string, string | undefined> = {
    FLOCK_INITIAL_MODEL: options.initialModel ?? undefined,
    FLOCK_PACE_STEERING: options.pace ? 'true' : 'false',
    FLOCK_UPLOAD_PORT: options.uploads === 'socket' ? 'off' : undefined,
    FLOCK_MAX_UPLOADS_PER_SECOND: options.maxUploadsPerSecond ?? undefined,
    NODE_OPTIONS: options.nodeOptions ?? undefined,
    FLOCK_DATABASE_URL: options.postgresUrl ?? undefined,
    FLOCK_REDIS_URL: options.redisUrl ?? undefined,
  };
  const started: CoordinatorProcess[] = [];
  try {
    for (let i = 0; i < options.processes; i++) started.push(await startCoordinator(env, `loadtest-${i}`));
  } catch (error) {
    started.forEach((coordinator) => coordinator.close());
    throw error;
  }
  return started;
}

async function operatorJson<T>(url: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const response = await noKeepAliveFetch(`${url}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, 'Content-Type': 'application/json' },
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** Starts a round; while the previous one is still closing (telling its devices), the coordinator answers 409: retried for a while. */
export async function startRound(url: string, body: Record<string, unknown>): Promise<RoundRecord> {
  const until = Date.now() + 60_000;
  for (;;) {
    const { status, body: round } = await operatorJson<RoundRecord>(url, '/api/rounds', { method: 'POST', body: JSON.stringify(body) });
    if (status === 201) return round;
    if (status !== 409 || Date.now() > until) throw new Error(`POST /api/rounds answered ${status}: ${JSON.stringify(round)}`);
    await new Promise((wait) => setTimeout(wait, 250));
  }
}

export async function roundDetails(url: string, roundId: string): Promise<RoundDetails> {
  return (await operatorJson<RoundDetails>(url, `/api/rounds/${roundId}`)).body;
}

/** Connected devices as the coordinator counts them. */
export async function connectedCount(url: string): Promise<number> {
  return (await operatorJson<{ connected: number }>(url, '/api/clients')).body.connected;
}

/** The coordinator's Prometheus exposition (`/metrics`), read with the operator token. */
export async function scrape(url: string): Promise<string> {
  const response = await noKeepAliveFetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
  return response.text();
}

/** The event-loop delay p99 the coordinator exports (flock_event_loop_delay_seconds{quantile="0.99"}), in ms. */
export async function eventLoopDelayP99Ms(url: string): Promise<number> {
  const match = /^flock_event_loop_delay_seconds\{quantile="0\.99"\} (\S+)$/m.exec(await scrape(url));
  if (!match) throw new Error('the coordinator exports no flock_event_loop_delay_seconds{quantile="0.99"}');
  return Number(match[1]) * 1000;
}

/** HTTP upload requests so far by result (flock_upload_requests_total: received, busy, ...), from an exposition; empty without the upload listener. */
export function uploadRequests(exposition: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const match of exposition.matchAll(/^flock_upload_requests_total\{result="(\w+)"\} (\S+)$/gm)) counts.set(match[1]!, Number(match[2]));
  return counts;
}

/** Garbage collections so far, from an exposition's flock_nodejs_gc_duration_seconds (prom-client): count and seconds by kind (major, minor, incremental, weakcb). */
export function gcTotals(exposition: string): Map<string, { count: number; seconds: number }> {
  const totals = new Map<string, { count: number; seconds: number }>();
  for (const match of exposition.matchAll(/^flock_nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} (\S+)$/gm)) {
    const entry = totals.get(match[2]!) ?? { count: 0, seconds: 0 };
    if (match[1] === 'sum') entry.seconds = Number(match[3]);
    else entry.count = Number(match[3]);
    totals.set(match[2]!, entry);
  }
  return totals;
}
