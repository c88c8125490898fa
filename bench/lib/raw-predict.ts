/**
 * The limit every serving path is compared with: back-to-back `model.predict` in one inference
 * worker thread (the serving pool's, no HTTP, no queue), on a coordinator's version 1.
 */
import type { WeightSpec } from '../../client-sdk/src/protocol/index.js';
import { InferencePool } from '../../server/src/serving/inference-pool.js';
import { noKeepAliveFetch } from '../../server/src/simulation/http-fetch.js';
import { OPERATOR_TOKEN } from './coordinator-process.js';

/** Rows per second of back-to-back `model.predict` on batches of `batch` copies of `row`. */
async function rawRowsPerSecond(pool: InferencePool, version: number, row: Float32Array, batch: number, seconds: number): Promise<number> {
  const input = new Float32Array(batch * row.length);
  for (let r = 0; r < batch; r++) input.set(row, r * row.length);
  for (let i = 0; i < 5; i++) await pool.run(version, batch, input.slice());
  const started = performance.now();
  let rows = 0;
  while (performance.now() - started < seconds * 1000) {
    await pool.run(version, batch, input.slice());
    rows += batch;
  }
  return rows / ((performance.now() - started) / 1000);
}

/** Loads version `version` of the coordinator at `url` (its model.json and weights, fetched with the operator token) into `pool`. */
export async function loadCoordinatorVersion(pool: InferencePool, url: string, version: number): Promise<void> {
  const headers = { Authorization: `Bearer ${OPERATOR_TOKEN}` };
  const modelJson = (await (await noKeepAliveFetch(`${url}/api/models/${version}/model.json`, { headers })).json()) as {
    modelTopology: unknown;
    weightsManifest: { weights: WeightSpec[] }[];
  };
  const weights = new Uint8Array(await (await noKeepAliveFetch(`${url}/api/models/${version}/weights.bin`, { headers })).arrayBuffer());
  await pool.load(version, { topology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights), weights });
}

/** Version 1 of the coordinator at `url`, loaded into a pool of its own: rows/s on batches of `batch` rows and of one row. */
export async function rawPredictRowsPerSecond(url: string, row: Float32Array, batch: number, seconds: number): Promise<{ batched: number; single: number }> {
  const pool = new InferencePool(1);
  await pool.start();
  try {
    await loadCoordinatorVersion(pool, url, 1);
    return { batched: await rawRowsPerSecond(pool, 1, row, batch, seconds), single: await rawRowsPerSecond(pool, 1, row, 1, seconds) };
  } finally {
    await pool.close();
  }
}
