/**
 * Where an event processor gets its model: the coordinator's REST API, in the TensorFlow.js layers
 * format any client downloads (`GET /api/models/{version}/model.json`, then the weights file it
 * names), with the operator token or the client token (both may read models).
 */
import { parseModelJson, validateWeightBytes, type ModelArtifactsParts } from '../models/tfjs-format.js';

/** A model.json is topology and a manifest; far below this. */
const MAX_MODEL_JSON_BYTES = 16 * 1024 * 1024;

export interface FetchedModel {
  version: number;
  parts: ModelArtifactsParts;
}

export class ModelSource {
  private readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 30_000,
  ) {
    this.baseUrl = new URL(baseUrl).toString().replace(/\/$/, '');
  }

  /** The number of the current version (what `current` resolves to now). */
  async currentVersion(): Promise<number> {
    const { version } = await this.modelJson('current');
    return version;
  }

  /** A version's topology and weights; `current` is resolved to a number by the coordinator. */
  async fetch(version: number | 'current'): Promise<FetchedModel> {
    const { version: resolved, json, url } = await this.modelJson(version);
    const { topology, weightSpecs, paths } = parseModelJson(json);
    const shards: Uint8Array[] = [];
    for (const path of paths) shards.push(new Uint8Array(await (await this.get(new URL(path, url).toString())).arrayBuffer()));
    const weights = shards.length === 1 ? shards[0]! : Buffer.concat(shards);
    validateWeightBytes(weightSpecs, weights);
    return { version: resolved, parts: { topology, weightSpecs, weights } };
  }

  private async modelJson(version: number | 'current'): Promise<{ version: number; json: unknown; url: string }> {
    const url = `${this.baseUrl}/api/models/${version}/model.json`;
    const response = await this.get(url);
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > MAX_MODEL_JSON_BYTES) throw new Error(`model.json of version ${version} is ${length} bytes; at most ${MAX_MODEL_JSON_BYTES}`);
    const resolved = Number(response.headers.get('x-flock-model-version'));
    if (!Number.isInteger(resolved) || resolved < 1) throw new Error(`the coordinator did not say which version ${version} is (X-Flock-Model-Version)`);
    return { version: resolved, json: await response.json(), url };
  }

  private async get(url: string): Promise<Response> {
    const response = await fetch(url, { headers: { Authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(this.timeoutMs) });
    if (!response.ok) {
      await response.body?.cancel();
      throw new ModelSourceError(response.status, `GET ${new URL(url).pathname}: HTTP ${response.status}`);
    }
    return response;
  }
}

export class ModelSourceError extends Error {
  override readonly name = 'ModelSourceError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
