/**
 * The Open Inference Protocol (KServe V2) routes of the serverless handler, on the platform-neutral
 * request: the same paths, checks, tensors and errors as the coordinator's `/v2` (one codec,
 * serving/infer-codec.ts), for the one version packaged with it, predicting in-process.
 */
import { randomUUID } from 'node:crypto';
import { matchesAnyKey, bearerFromHeader } from '../auth/tokens.js';
import {
  INFERENCE_HEADER_LENGTH,
  SERVED_DATATYPE,
  SERVED_MODEL_NAME,
  SERVED_PLATFORM,
  v2VersionParamSchema,
  type V2ModelMetadata,
  type V2ServerMetadata,
} from '../contract/index.js';
import { decodeInferBody, encodeInferResponse, InferRequestError, prepareInput, selectOutputs, wantsBinaryOutput } from '../serving/infer-codec.js';
import { bodyTooLarge, jsonResponse, v2ErrorResponse, type ServerlessRequest, type ServerlessResponse } from './http.js';
import type { ServedModel } from './served-model.js';

export interface V2RouterOptions {
  /** FLOCK_INFERENCE_KEYS. */
  inferenceKeys: readonly string[];
  /** FLOCK_INFERENCE_MAX_BODY_BYTES. */
  maxBodyBytes: number;
  /** The packaged model; a promise while it loads (cold start), rejected when it could not. */
  model: () => Promise<ServedModel>;
  /** Whether the model has loaded (readiness), without waiting for it. */
  loaded: () => boolean;
}

export type ServerlessHandler = (request: ServerlessRequest) => Promise<ServerlessResponse>;

/** `/v2...` out of a path that may carry a stage or base path before it; null when there is none. */
export function v2PathOf(path: string): string | null {
  const match = /(?:^|\/)(v2(?:\/.*)?)$/.exec(path);
  if (!match) return null;
  const route = `/${match[1]!}`;
  return route.length > 1 && route.endsWith('/') ? route.slice(0, -1) : route;
}

type Route = { kind: 'live' } | { kind: 'ready' } | { kind: 'server' } | { kind: 'model' | 'model-ready' | 'infer'; name: string; version: string | null };

/** Matches a `/v2` path and method to a route; a string is the error (404 or 405). */
function route(method: string, path: string): Route | { status: number; error: string } {
  const segments = path.split('/').slice(2).map(safeDecode);
  const get = method === 'GET' || method === 'HEAD';
  const only = (allowed: boolean, found: Route): Route | { status: number; error: string } =>
    allowed ? found : { status: 405, error: `method ${method} is not allowed on ${path}` };
  const [a, b, c, d, e] = segments;
  if (segments.length === 0) return only(get, { kind: 'server' });
  if (a === 'health' && segments.length === 2 && (b === 'live' || b === 'ready')) return only(get, b === 'live' ? { kind: 'live' } : { kind: 'ready' });
  if (a === 'models' && b !== undefined && b !== null) {
    if (segments.length === 2) return only(get, { kind: 'model', name: b, version: null });
    if (segments.length === 3 && c === 'ready') return only(get, { kind: 'model-ready', name: b, version: null });
    if (segments.length === 3 && c === 'infer') return only(method === 'POST', { kind: 'infer', name: b, version: null });
    if (c === 'versions' && d !== undefined && d !== null) {
      if (segments.length === 4) return only(get, { kind: 'model', name: b, version: d });
      if (segments.length === 5 && e === 'infer') return only(method === 'POST', { kind: 'infer', name: b, version: d });
    }
  }
  return { status: 404, error: `no route ${path}` };
}

function safeDecode(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** The packaged version if `name`/`version` name it; otherwise the V2 error. */
async function resolveModel(options: V2RouterOptions, name: string, version: string | null): Promise<ServedModel | ServerlessResponse> {
  if (name !== SERVED_MODEL_NAME) return v2ErrorResponse(404, `unknown model "${name.slice(0, 64)}"; this function serves "${SERVED_MODEL_NAME}"`);
  let model: ServedModel;
  try {
    model = await options.model();
  } catch {
    return v2ErrorResponse(503, 'the packaged model could not be loaded; see the function log');
  }
  if (version !== null) {
    const parsed = v2VersionParamSchema.safeParse(version);
    if (!parsed.success) return v2ErrorResponse(400, 'model version must be a positive integer');
    if (parsed.data !== model.version)
      return v2ErrorResponse(404, `model version ${parsed.data} is not packaged here; this function serves version ${model.version}`);
  }
  return model;
}

function metadataOf(model: ServedModel): V2ModelMetadata {
  const tensor = ({ name, shape }: { name: string; shape: number[] }) => ({ name, datatype: SERVED_DATATYPE, shape });
  return {
    name: SERVED_MODEL_NAME,
    versions: [String(model.version)],
    platform: SERVED_PLATFORM,
    inputs: model.signature.inputs.map(tensor),
    outputs: model.signature.outputs.map(tensor),
  };
}

/** Binary tensor extension: recognised by its header (or an octet-stream body), as the coordinator does. */
function isBinary(headers: ServerlessRequest['headers']): boolean {
  const type = headers['content-type'];
  return headers[INFERENCE_HEADER_LENGTH] !== undefined || (typeof type === 'string' && type.startsWith('application/octet-stream'));
}

function infer(model: ServedModel, request: ServerlessRequest): ServerlessResponse {
  const requestId = randomUUID();
  let body: unknown = request.body;
  let headerLength: number | undefined;
  if (isBinary(request.headers)) {
    const header = request.headers[INFERENCE_HEADER_LENGTH];
    headerLength = header === undefined ? undefined : Number(header);
  } else {
    try {
      body = JSON.parse(Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength).toString('utf8'));
    } catch {
      return v2ErrorResponse(400, 'request body is not valid JSON');
    }
  }
  const decoded = decodeInferBody(body, headerLength);
  const prepared = prepareInput(decoded, model.signature);
  const selected = selectOutputs(decoded.request, model.signature);
  const outputs = model.predict(prepared.rows, prepared.input);
  const encoded = encodeInferResponse(
    { model_name: SERVED_MODEL_NAME, model_version: String(model.version), id: decoded.request.id ?? requestId, parameters: { request_id: requestId } },
    model.signature,
    selected,
    prepared.rows,
    outputs,
    wantsBinaryOutput(decoded.request),
  );
  if (!Buffer.isBuffer(encoded.body)) return jsonResponse(200, encoded.body);
  return {
    status: 200,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(encoded.headerLength) },
    body: encoded.body,
  };
}

/** The V2 routes on the packaged model. Never throws: every failure is a V2 error response. */
export function createV2Router(options: V2RouterOptions): ServerlessHandler {
  const handle = async (request: ServerlessRequest): Promise<ServerlessResponse> => {
    const path = v2PathOf(request.path);
    if (path === null) return v2ErrorResponse(404, 'not found: this function serves the inference API under /v2');
    const method = request.method.toUpperCase();
    const found = route(method, path);
    if ('status' in found) return v2ErrorResponse(found.status, found.error);
    if (request.body.byteLength > options.maxBodyBytes) return bodyTooLarge(options.maxBodyBytes);
    if (found.kind === 'live') return jsonResponse(200, { live: true });
    if (found.kind === 'ready') {
      // The first call after a cold start waits for the model; later ones answer at once.
      const ready =
        options.loaded() ||
        (await options.model().then(
          () => true,
          () => false,
        ));
      return jsonResponse(ready ? 200 : 503, { ready });
    }
    if (!matchesAnyKey(bearerFromHeader(request.headers.authorization), options.inferenceKeys)) {
      return v2ErrorResponse(401, 'inference key required: send Authorization: Bearer <key>');
    }
    if (found.kind === 'server') return jsonResponse(200, { name: 'flock', version: '0.1.0', extensions: ['binary_tensor_data'] } satisfies V2ServerMetadata);
    const model = await resolveModel(options, found.name, found.version);
    if ('status' in model) return model;
    if (found.kind === 'model') return jsonResponse(200, metadataOf(model));
    if (found.kind === 'model-ready') return jsonResponse(200, { ready: true });
    return infer(model, request);
  };
  return async (request) => {
    try {
      return await handle(request);
    } catch (error) {
      if (error instanceof InferRequestError) return v2ErrorResponse(400, error.message);
      // Never the request's body or headers: only what failed.
      console.error(JSON.stringify({ level: 'error', msg: 'inference request failed', err: error instanceof Error ? error.message : String(error) }));
      return v2ErrorResponse(500, 'internal error');
    }
  };
}
