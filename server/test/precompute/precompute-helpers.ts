import type { PrecomputeJob } from '../../src/contract/index.js';
import { OPERATOR_TOKEN, waitFor } from '../support/coordinator.js';
import { tinyRows } from '../serving/serving-helpers.js';

export const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** NDJSON lines of the tiny model's input (16 values), keys `k0`, `k1`, ... */
export function ndjsonLines(count: number, seed = 1, prefix = 'k'): string[] {
  return tinyRows(count, seed).map((input, i) => JSON.stringify({ id: `${prefix}${i}`, input }));
}

/** POSTs an input body to /api/precompute/{dataset}. */
export async function upload(
  baseUrl: string,
  dataset: string,
  body: string | Buffer,
  query = '',
  contentType = 'application/x-ndjson',
): Promise<{ status: number; body: PrecomputeJob & { message?: unknown } }> {
  const response = await fetch(`${baseUrl}/api/precompute/${dataset}${query}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, 'Content-Type': contentType },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  return { status: response.status, body: (await response.json()) as PrecomputeJob & { message?: unknown } };
}

/** Polls a job until it completed or failed. */
export async function jobFinished(baseUrl: string, id: string, timeoutMs = 60_000): Promise<PrecomputeJob> {
  const { body } = await waitFor(
    async () => {
      const response = await fetch(`${baseUrl}/api/precompute/jobs/${id}`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
      return { status: response.status, body: (await response.json()) as PrecomputeJob };
    },
    (r) => r.status === 200 && (r.body.status === 'completed' || r.body.status === 'failed'),
    timeoutMs,
    `precompute job ${id}`,
  );
  return body;
}
