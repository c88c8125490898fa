/**
 * A typed client of the coordinator's operator REST API (`/api/...`), used by the `flock` CLI and the
 * simulator. It depends only on the global `fetch` and on the REST contract (contract/), never on the
 * coordinator's runtime modules. Every JSON response is checked against the contract's schema, so a
 * coordinator that drifted from it fails loudly instead of handing out half-shaped records.
 */
import type { z } from 'zod';
import {
  clientCountsSchema,
  errorBodySchema,
  healthSchema,
  inferenceLogPageSchema,
  statusSchema,
  modelJsonSchema,
  modelVersionDetailSchema,
  modelVersionListSchema,
  privacyStatusSchema,
  precomputeJobListSchema,
  precomputeJobSchema,
  predictionSchema,
  type PrecomputeFormat,
  type PrecomputeJob,
  type PrecomputeJobListQuery,
  type Prediction,
  type PrivacyStatus,
  modelVersionMetaSchema,
  REGISTER_PARTS,
  roundDetailsSchema,
  roundListSchema,
  roundRecordSchema,
  validationMessages,
  type ClientCountsResponse,
  type HealthResponse,
  type InferenceLogPage,
  type InferenceLogQueryInput,
  type StatusResponse,
  type ModelJson,
  type ModelVersionDetail,
  type ModelVersionMeta,
  type ModelVersionSelector,
  type RegisterMetrics,
  type RoundDetails,
  type RoundListQuery,
  type RoundRecord,
  type StartRoundRequest,
} from '../contract/index.js';

/** The coordinator answered with an HTTP error status, a body that is not JSON, or JSON that breaks the contract. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    /** HTTP status code. */
    readonly status: number,
    /** The server's `message` (Nest's error body), joined when it is a list of validation messages. */
    message: string,
    readonly method: string,
    readonly path: string,
    /** The parsed response body, when there was one. */
    readonly body: unknown = undefined,
  ) {
    super(message);
  }
}

/** The coordinator could not be reached (refused, DNS failure, reset, timeout). */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    /** The URL that was tried. */
    readonly url: string,
    /** A short cause, e.g. `ECONNREFUSED` or `timed out after 30000 ms`. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach ${url}: ${reason}`, options);
  }
}

export interface FlockApiClientOptions {
  /** e.g. `http://localhost:8080` (a trailing slash is ignored). */
  baseUrl: string;
  /** Operator token, sent as `Authorization: Bearer ...`. Omit for health checks only. */
  token?: string | null;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** Injected fetch (tests, instrumentation). Default: the global one. */
  fetch?: typeof fetch;
}

/** A model to register, as `model.save(tf.io.http(url))` would send it. */
export interface ModelRegistration {
  /** The TensorFlow.js model.json (topology and weights manifest). */
  modelJson: unknown;
  /** The weights, concatenated float32 little-endian in manifest order. */
  weights: Uint8Array;
  metrics?: RegisterMetrics;
}

type Method = 'GET' | 'POST';

const errorMessageSchema = errorBodySchema.pick({ message: true });

/** Nest's `message` (a string, or a list of validation messages) from an error body, else what there is. */
function errorMessage(body: unknown, status: number, statusText: string): string {
  const parsed = errorMessageSchema.safeParse(body);
  if (parsed.success) {
    const { message } = parsed.data;
    const text = Array.isArray(message) ? message.join('; ') : message;
    if (text.length > 0) return text;
  }
  if (typeof body === 'string' && body.trim().length > 0) return body.trim().slice(0, 300);
  return statusText ? `${status} ${statusText}` : `HTTP ${status}`;
}

/** The most specific cause of a failed fetch: `ECONNREFUSED`, `ENOTFOUND`, ... */
function describeFetchFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `timed out after ${timeoutMs} ms`;
  }
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if (current.cause === undefined) return current.message;
    current = current.cause;
  }
  return error instanceof Error ? error.message : String(error);
}

/** A body as JSON when it is JSON, else the text itself. */
function parseBody(text: string): { value: unknown; isJson: boolean } {
  if (text.length === 0) return { value: undefined, isJson: false };
  try {
    return { value: JSON.parse(text) as unknown, isJson: true };
  } catch {
    return { value: text, isJson: false };
  }
}

export class FlockApiClient {
  readonly baseUrl: string;
  private readonly token: string | null;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: FlockApiClientOptions) {
    // Validates the URL up front (throws TypeError on garbage) and drops trailing slashes.
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`unsupported URL protocol "${url.protocol}" (use http: or https:)`);
    }
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.token = options.token ?? null;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** No token needed: only says the coordinator is alive. */
  health(): Promise<HealthResponse> {
    return this.json(healthSchema, 'GET', '/api/health');
  }

  /** The current version, client counts, the round in flight and the uptime. */
  status(): Promise<StatusResponse> {
    return this.json(statusSchema, 'GET', '/api/status');
  }

  /** The privacy ledger: ε spent by the DP rounds so far, the budget, whether the current version is covered. */
  privacy(): Promise<PrivacyStatus> {
    return this.json(privacyStatusSchema, 'GET', '/api/privacy');
  }

  clientCounts(): Promise<ClientCountsResponse> {
    return this.json(clientCountsSchema, 'GET', '/api/clients');
  }

  /** All model versions, newest first. */
  listModels(): Promise<ModelVersionMeta[]> {
    return this.json(modelVersionListSchema, 'GET', '/api/models');
  }

  /** The current global version (404 before the first one exists). */
  currentModel(): Promise<ModelVersionDetail> {
    return this.json(modelVersionDetailSchema, 'GET', '/api/models/current');
  }

  getModel(version: number): Promise<ModelVersionDetail> {
    return this.json(modelVersionDetailSchema, 'GET', `/api/models/${encodeURIComponent(String(version))}`);
  }

  /** Makes an older version current again (the coordinator records it as a new `rollback` version). */
  rollbackModel(version: number): Promise<ModelVersionMeta> {
    return this.json(modelVersionMetaSchema, 'POST', `/api/models/${encodeURIComponent(String(version))}/rollback`);
  }

  /** Registers a TensorFlow.js layers model as a new global version (multipart, as tf.io.http sends it). */
  registerModel(model: ModelRegistration): Promise<ModelVersionMeta> {
    const form = new FormData();
    form.append(REGISTER_PARTS.modelJson, new Blob([JSON.stringify(model.modelJson)], { type: 'application/json' }), REGISTER_PARTS.modelJson);
    form.append(REGISTER_PARTS.weights, new Blob([model.weights.slice()], { type: 'application/octet-stream' }), REGISTER_PARTS.weights);
    if (model.metrics) form.append(REGISTER_PARTS.metrics, JSON.stringify(model.metrics));
    return this.json(modelVersionMetaSchema, 'POST', '/api/models', form);
  }

  /** A version's model.json (TensorFlow.js layers format); its weights path names the concrete version. */
  modelJson(version: ModelVersionSelector): Promise<ModelJson> {
    return this.json(modelJsonSchema, 'GET', `/api/models/${encodeURIComponent(String(version))}/model.json`);
  }

  /** A version's weights: float32 little-endian, in weight-spec order. */
  async modelWeights(version: number): Promise<Uint8Array> {
    const path = `/api/models/${encodeURIComponent(String(version))}/weights.bin`;
    const response = await this.send('GET', path, undefined, 'application/octet-stream');
    if (!response.ok) return this.fail(response, 'GET', path);
    return new Uint8Array(await this.read(response, (r) => r.arrayBuffer()));
  }

  /** 409 when a round is already running; 400 on invalid parameters. */
  startRound(params: StartRoundRequest = {}): Promise<RoundRecord> {
    return this.json(roundRecordSchema, 'POST', '/api/rounds', JSON.stringify(params));
  }

  /** Rounds, newest first. */
  listRounds(options: RoundListQuery = {}): Promise<RoundRecord[]> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.offset !== undefined) query.set('offset', String(options.offset));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.json(roundListSchema, 'GET', `/api/rounds${suffix}`);
  }

  /** A page of the inference log, newest first (`nextBefore` continues it). */
  inferenceLog(query: InferenceLogQueryInput = {}): Promise<InferenceLogPage> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query) as [string, string | number | undefined][]) if (value !== undefined) params.set(key, String(value));
    const suffix = params.size > 0 ? `?${params.toString()}` : '';
    return this.json(inferenceLogPageSchema, 'GET', `/api/inference-log${suffix}`);
  }

  /**
   * Uploads a precompute input (a Blob, e.g. `fs.openAsBlob(path)`, streamed from disk) and starts its
   * job; the upload has `uploadTimeoutMs` (default 10 min) instead of the per-request timeout.
   */
  startPrecompute(
    dataset: string,
    input: Blob,
    options: { format: PrecomputeFormat; keyField?: string; version?: number; follow?: boolean; uploadTimeoutMs?: number },
  ): Promise<PrecomputeJob> {
    const params = new URLSearchParams({ format: options.format });
    if (options.keyField !== undefined) params.set('keyField', options.keyField);
    if (options.version !== undefined) params.set('version', String(options.version));
    if (options.follow) params.set('follow', 'true');
    const contentType = options.format === 'csv' ? 'text/csv' : 'application/x-ndjson';
    return this.json(precomputeJobSchema, 'POST', `/api/precompute/${encodeURIComponent(dataset)}?${params.toString()}`, input, {
      contentType,
      timeoutMs: options.uploadTimeoutMs ?? 10 * 60_000,
    });
  }

  precomputeJob(id: string): Promise<PrecomputeJob> {
    return this.json(precomputeJobSchema, 'GET', `/api/precompute/jobs/${encodeURIComponent(id)}`);
  }

  /** Precompute jobs, newest first. */
  precomputeJobs(query: Partial<PrecomputeJobListQuery> = {}): Promise<PrecomputeJob[]> {
    const params = new URLSearchParams();
    if (query.dataset !== undefined) params.set('dataset', query.dataset);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    const suffix = params.size > 0 ? `?${params.toString()}` : '';
    return this.json(precomputeJobListSchema, 'GET', `/api/precompute/jobs${suffix}`);
  }

  /** A precomputed prediction: of `version`, else the newest version that has the key. */
  prediction(dataset: string, key: string, version?: number): Promise<Prediction> {
    const suffix = version === undefined ? '' : `?version=${version}`;
    return this.json(predictionSchema, 'GET', `/api/predictions/${encodeURIComponent(dataset)}/${encodeURIComponent(key)}${suffix}`);
  }

  getRound(id: string): Promise<RoundDetails> {
    return this.json(roundDetailsSchema, 'GET', `/api/rounds/${encodeURIComponent(id)}`);
  }

  cancelRound(id: string): Promise<RoundRecord> {
    return this.json(roundRecordSchema, 'POST', `/api/rounds/${encodeURIComponent(id)}/cancel`);
  }

  /**
   * A JSON response checked against its contract schema. The body is returned as the server sent it
   * (the schemas have no transforms), so `--json` prints exactly what the coordinator answered.
   */
  private async json<S extends z.ZodType>(
    schema: S,
    method: Method,
    path: string,
    body?: string | FormData | Blob,
    options: { contentType?: string; timeoutMs?: number } = {},
  ): Promise<z.output<S>> {
    const response = await this.send(method, path, body, 'application/json', options);
    if (!response.ok) return this.fail(response, method, path);
    const text = await this.read(response, (r) => r.text());
    const { value, isJson } = parseBody(text);
    if (!isJson) {
      throw new ApiError(
        response.status,
        `expected a JSON response from ${method} ${path}, got ${text.length === 0 ? 'an empty body' : `"${text.slice(0, 80)}"`} (is ${this.baseUrl} a Flock coordinator?)`,
        method,
        path,
        value,
      );
    }
    const checked = schema.safeParse(value);
    if (!checked.success) {
      throw new ApiError(
        response.status,
        `the response of ${method} ${path} breaks the API contract: ${validationMessages(checked.error).join('; ')} (is ${this.baseUrl} a Flock coordinator of this version?)`,
        method,
        path,
        value,
      );
    }
    return value as z.output<S>;
  }

  private async send(
    method: Method,
    path: string,
    body: string | FormData | Blob | undefined,
    accept = 'application/json',
    options: { contentType?: string; timeoutMs?: number } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // A FormData body sets its own multipart content type (with the boundary).
    if (options.contentType) headers['content-type'] = options.contentType;
    else if (typeof body === 'string') headers['content-type'] = 'application/json';
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    try {
      return await this.fetchImpl(`${this.baseUrl}${path}`, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      throw new ConnectionError(this.baseUrl, describeFetchFailure(error, timeoutMs), { cause: error });
    }
  }

  /** Reads a response body; a connection that breaks meanwhile is a ConnectionError. */
  private async read<T>(response: Response, reader: (response: Response) => Promise<T>): Promise<T> {
    try {
      return await reader(response);
    } catch (error) {
      throw new ConnectionError(this.baseUrl, describeFetchFailure(error, this.timeoutMs), { cause: error });
    }
  }

  /** Throws the ApiError of an HTTP error status, with the server's message. */
  private async fail(response: Response, method: Method, path: string): Promise<never> {
    const { value } = parseBody(await this.read(response, (r) => r.text()));
    throw new ApiError(response.status, errorMessage(value, response.status, response.statusText), method, path, value);
  }
}
