/**
 * A small typed client of the coordinator's operator REST API (`/api/...`). Used by the `flock`
 * CLI; written to be reusable by the dashboard and the simulator: it depends only on the global
 * `fetch` and on type declarations, never on the coordinator's runtime modules.
 */
import type { RoundRecord, RoundTransition } from '../rounds/round-types.js';
import type { ModelVersionMeta } from '../storage/storage.js';

export type { ModelVersionMeta, RoundRecord, RoundTransition };
export type { RoundMetrics, RoundParams, RoundStatus } from '../rounds/round-types.js';

import type { Health } from '../operators/health.controller.js';
import type { StartRoundRequest } from '../rounds/start-round.js';
import type { RoundView } from '../rounds/rounds.service.js';

/** `GET /api/health` (no token needed). */
export type HealthResponse = Health;
/** `POST /api/rounds` body. Every field is optional: the coordinator fills in its defaults. */
export type { StartRoundRequest };
/** `GET /api/rounds/:id`: the record plus its state transitions and the time left to its deadline. */
export type RoundDetails = RoundView;

/** The coordinator answered with an HTTP error status (or with a body that is not JSON). */
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

/** Extracts Nest's `message` (a string, or a list of validation messages) from an error body. */
function errorMessage(body: unknown, status: number, statusText: string): string {
  if (body !== null && typeof body === 'object' && 'message' in body) {
    const message = (body as { message: unknown }).message;
    if (typeof message === 'string' && message.length > 0) return message;
    if (Array.isArray(message) && message.length > 0) return message.map(String).join('; ');
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

  health(): Promise<HealthResponse> {
    return this.request('GET', '/api/health');
  }

  /** All model versions, newest first. */
  listModels(): Promise<ModelVersionMeta[]> {
    return this.request('GET', '/api/models');
  }

  /** The current global version (404 before the first one exists). */
  currentModel(): Promise<ModelVersionMeta> {
    return this.request('GET', '/api/models/current');
  }

  getModel(version: number): Promise<ModelVersionMeta> {
    return this.request('GET', `/api/models/${encodeURIComponent(String(version))}`);
  }

  /** Makes an older version current again (the coordinator records it as a new `rollback` version). */
  rollbackModel(version: number): Promise<ModelVersionMeta> {
    return this.request('POST', `/api/models/${encodeURIComponent(String(version))}/rollback`);
  }

  /** 409 when a round is already running; 400 on invalid parameters. */
  startRound(params: StartRoundRequest = {}): Promise<RoundRecord> {
    return this.request('POST', '/api/rounds', params);
  }

  /** Rounds, newest first. */
  listRounds(options: { limit?: number; offset?: number } = {}): Promise<RoundRecord[]> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.offset !== undefined) query.set('offset', String(options.offset));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.request('GET', `/api/rounds${suffix}`);
  }

  getRound(id: string): Promise<RoundDetails> {
    return this.request('GET', `/api/rounds/${encodeURIComponent(id)}`);
  }

  cancelRound(id: string): Promise<RoundRecord> {
    return this.request('POST', `/api/rounds/${encodeURIComponent(id)}/cancel`);
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new ConnectionError(this.baseUrl, describeFetchFailure(error, this.timeoutMs), { cause: error });
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new ConnectionError(this.baseUrl, describeFetchFailure(error, this.timeoutMs), { cause: error });
    }
    let parsed: unknown = undefined;
    let isJson = false;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
        isJson = true;
      } catch {
        parsed = text;
      }
    }
    if (!response.ok) {
      throw new ApiError(response.status, errorMessage(parsed, response.status, response.statusText), method, path, parsed);
    }
    if (!isJson) {
      throw new ApiError(
        response.status,
        `expected a JSON response from ${method} ${path}, got ${text.length === 0 ? 'an empty body' : `"${text.slice(0, 80)}"`} (is ${this.baseUrl} a Flock coordinator?)`,
        method,
        path,
        parsed,
      );
    }
    return parsed as T;
  }
}
