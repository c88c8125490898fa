/**
 * A closed-loop load: `inFlight` lanes, each sending its next request as soon as its last one was
 * answered, until `requests` were sent. Requests/s and latency percentiles of the answered ones.
 * Shared by the serving-pattern benchmarks so every path is loaded the same way.
 */
export interface ClosedLoopResult {
  requests: number;
  inFlight: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export function percentile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** `send(i)` sends request i and resolves true when it was answered successfully (false or a throw: an error). */
export async function closedLoop(requests: number, inFlight: number, send: (index: number) => Promise<boolean>): Promise<ClosedLoopResult> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (next < requests) {
      const index = next++;
      const sent = performance.now();
      const ok = await send(index).catch(() => false);
      if (ok) latencies.push(performance.now() - sent);
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests,
    inFlight,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errors,
  };
}
