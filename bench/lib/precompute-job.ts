/** Precomputing a dataset on a coordinator process, as the benchmarks do: the NDJSON upload, then polling the job to its end. */
import type { PrecomputeJob } from '../../server/src/contract/index.js';
import { readMnist } from '../../server/src/datasets/mnist.js';
import { OPERATOR_TOKEN } from './coordinator-process.js';

/** The first `rows` MNIST test images as NDJSON (`{"id": "t<i>", "input": [784 values in [0, 1], 4 decimals]}`). */
export async function mnistNdjson(rows: number): Promise<string> {
  const { images, count } = await readMnist('test', { count: rows });
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const pixels = Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => Math.round((v / 255) * 10_000) / 10_000);
    lines.push(JSON.stringify({ id: `t${i}`, input: pixels }));
  }
  return `${lines.join('\n')}\n`;
}

async function api<T>(url: string, path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(`${url}${path}`, { ...init, headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, ...(init.headers ?? {}) } });
  const body = (await response.json()) as T;
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

export interface PrecomputeRun {
  job: PrecomputeJob;
  /** Upload start to the job's completion, and the upload alone. */
  wallSeconds: number;
  uploadSeconds: number;
}

/** Uploads `ndjson` as `dataset` and waits for its job to complete (throws when it does not). */
export async function precompute(url: string, dataset: string, ndjson: string): Promise<PrecomputeRun> {
  const started = performance.now();
  const queued = await api<PrecomputeJob>(url, `/api/precompute/${dataset}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-ndjson' },
    body: ndjson,
  });
  const uploaded = performance.now();
  let job = queued;
  while (job.status === 'queued' || job.status === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 100));
    job = await api<PrecomputeJob>(url, `/api/precompute/jobs/${queued.id}`);
  }
  if (job.status !== 'completed') throw new Error(`job ${job.id} ${job.status}: ${job.error}`);
  return { job, wallSeconds: (performance.now() - started) / 1000, uploadSeconds: (uploaded - started) / 1000 };
}
