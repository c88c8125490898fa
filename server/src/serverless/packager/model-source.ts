/**
 * Where the packaged model comes from: a coordinator's REST API (a version's model.json and weights,
 * with a token that may read models), a coordinator's data directory (the SQLite database of a
 * `pnpm start` coordinator: its current version, e.g. the 2NN it seeds), or a model.json on disk.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FlockApiClient } from '../../cli/api-client.js';
import type { ModelVersionSelector } from '../../contract/index.js';
import { parseModelJson, readModelFromDisk, validateWeightBytes, type ModelArtifactsParts } from '../../models/tfjs-format.js';
import { createStorage } from '../../storage/storage.module.js';

export interface PackagedModelSource {
  version: number;
  parts: ModelArtifactsParts;
  /** For the manifest and the log: never a token. */
  source: string;
}

export async function modelFromCoordinator(baseUrl: string, version: ModelVersionSelector, token: string): Promise<PackagedModelSource> {
  const client = new FlockApiClient({ baseUrl, token });
  const json = await client.modelJson(version);
  const { topology, weightSpecs, paths } = parseModelJson(json);
  // The weights path names the concrete version (`../7/weights.bin`), also for `current`.
  const concrete = /^\.\.\/([1-9][0-9]*)\/weights\.bin$/.exec(paths[0] ?? '');
  if (!concrete || paths.length !== 1) throw new Error(`unexpected weights path ${JSON.stringify(paths)} in the coordinator's model.json`);
  const resolved = Number(concrete[1]);
  const weights = await client.modelWeights(resolved);
  validateWeightBytes(weightSpecs, weights);
  return { version: resolved, parts: { topology, weightSpecs, weights }, source: `${client.baseUrl}/api/models/${resolved}` };
}

/** The current version (or `version`) of the SQLite database in a coordinator's data directory. */
export async function modelFromDataDir(dataDir: string, version: number | null): Promise<PackagedModelSource> {
  const dir = resolve(dataDir);
  // Never create a database where there is none.
  if (!existsSync(join(dir, 'flock.db'))) throw new Error(`${dir} holds no coordinator database (flock.db); pass the coordinator's FLOCK_DATA_DIR`);
  const storage = createStorage({ databaseUrl: null, dataDir: dir });
  await storage.init();
  try {
    const wanted = version ?? (await storage.latestModelVersion())?.version;
    if (wanted === undefined) throw new Error(`the data directory ${dir} holds no model version yet (start the coordinator once: it seeds version 1)`);
    const record = await storage.getModelVersion(wanted);
    const weights = await storage.getModelWeights(wanted);
    if (!record || !weights) throw new Error(`the data directory ${dir} has no model version ${wanted}`);
    validateWeightBytes(record.weightSpecs, weights);
    return { version: wanted, parts: { topology: record.topology, weightSpecs: record.weightSpecs, weights }, source: `${dir} (version ${wanted})` };
  } finally {
    await storage.close();
  }
}

export async function modelFromFile(modelJsonPath: string, version: number): Promise<PackagedModelSource> {
  const path = resolve(modelJsonPath);
  return { version, parts: await readModelFromDisk(path), source: path };
}
