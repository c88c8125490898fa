/**
 * HTTP load from autocannon (raw sockets, bodies encoded once): what a well-kept load generator
 * measures, where fetch() in the bench process would itself be the bottleneck. `amount` requests over
 * `connections` keep-alive connections (one in flight each: a closed loop like closed-loop.ts's).
 */
import autocannon, { type Request } from 'autocannon';
import type { ClosedLoopResult } from './closed-loop.js';

export interface HttpLoad {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string | Buffer;
  /** Paths to cycle through, one per request (else the URL's own). */
  paths?: readonly string[];
}

export async function httpLoad(load: HttpLoad, amount: number, connections: number): Promise<ClosedLoopResult> {
  let next = 0;
  const paths = load.paths;
  const result = await autocannon({
    url: load.url,
    method: load.method,
    headers: load.headers,
    ...(load.body !== undefined ? { body: load.body } : {}),
    ...(paths ? { requests: [{ setupRequest: (request: Request): Request => ({ ...request, path: paths[next++ % paths.length]! }) }] } : {}),
    connections,
    amount,
  });
  const seconds = result.duration;
  return {
    requests: amount,
    inFlight: connections,
    seconds,
    requestsPerSecond: result.requests.total / seconds,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}
