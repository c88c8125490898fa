/**
 * The inference API's hot route, `POST /v2/models/{name}[/versions/{version}]/infer`, answered by a
 * plain node:http request listener in front of express: no helmet middleware chain, body parser,
 * Nest router, guard, pipe or interceptor per request, which cost the event loop several times
 * more than the prediction (bench/results/serving.md). Everything that matters is kept, by calling
 * the same code as the express route: the inference-key check (assertInferenceKey), the version
 * check (the route's ZodParamPipe), the body bound (FLOCK_INFERENCE_MAX_BODY_BYTES, 413), the V2
 * errors (v2ErrorOf), helmet's headers (collected from helmet once) and ServingService.infer, which
 * validates the tensors, batches them and writes the inference log.
 *
 * Only the canonical form is taken here: lower-case path of plain segments, no Content-Encoding,
 * a JSON (UTF-8) or binary-extension body. Anything else (gzip bodies, other content types,
 * percent-encoded names, express's case-insensitive or trailing-slash variants) goes on to express,
 * which answers it as before.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BadRequestException, PayloadTooLargeException } from '@nestjs/common';
import { answer, interceptRequests } from '../boundary/fast-routes.js';
import { helmetHeaders } from '../boundary/web-hygiene.js';
import { INFERENCE_HEADER_LENGTH, v2VersionParamSchema } from '../contract/index.js';
import { ZodParamPipe } from '../operators/zod-validation.js';
import { BodyAbortedError, BodyTooLargeError, readBoundedBody } from './bounded-body.js';
import { assertInferenceKey } from './inference-key.guard.js';
import type { InferOutcome, ServingService } from './serving.service.js';
import { v2ErrorOf } from './v2-error.filter.js';

/** `/v2/models/{name}/infer` or `/v2/models/{name}/versions/{version}/infer`, plain segments, an optional query. */
const INFER_PATH = /^\/v2\/models\/([A-Za-z0-9._~-]{1,256})(?:\/versions\/([A-Za-z0-9._~-]{1,64}))?\/infer(?:\?|$)/;

export type InferBodyKind = 'json' | 'binary';

export interface InferRoute {
  name: string;
  /** The version segment as sent (checked later, as the express route's pipe checks it). */
  version: string | null;
  body: InferBodyKind;
}

/**
 * Whether a request is the fast path's, and how its body is read; pure. Binary: an
 * Inference-Header-Content-Length header or `application/octet-stream` (as the express route's
 * raw parser decides); JSON: `application/json` in UTF-8 (as its JSON parser takes).
 */
export function matchInferRoute(method: string | undefined, url: string | undefined, headers: IncomingMessage['headers']): InferRoute | null {
  if (method !== 'POST' || url === undefined) return null;
  const match = INFER_PATH.exec(url);
  if (!match) return null;
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return null;
  const type = headers['content-type'];
  let body: InferBodyKind | null = null;
  if (headers[INFERENCE_HEADER_LENGTH] !== undefined || (typeof type === 'string' && type.startsWith('application/octet-stream'))) body = 'binary';
  else if (typeof type === 'string') {
    const [media, ...params] = type.split(';').map((part) => part.trim().toLowerCase());
    const charset = params.find((param) => param.startsWith('charset='))?.slice('charset='.length);
    if (media === 'application/json' && (charset === undefined || charset === 'utf-8' || charset === 'utf8')) body = 'json';
  }
  return body === null ? null : { name: match[1]!, version: match[2] ?? null, body };
}

/** The body as the express route's JSON parser reads it: empty is `{}`; only an object or array (strict). */
export function parseJsonBody(bytes: Buffer): unknown {
  const text = bytes.toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return {};
  if (first !== '{' && first !== '[') throw new BadRequestException('request body is not valid JSON');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BadRequestException('request body is not valid JSON');
  }
}

/** Answers the inference route before express; every other request goes on to the listeners the server had. */
export function installV2FastPath(server: Server, serving: ServingService, options: { inferenceKeys: readonly string[]; maxBodyBytes: number }): void {
  const versionPipe = new ZodParamPipe(v2VersionParamSchema);
  // Flat [name, value, ...] lists: writeHead takes them without building an object per answer.
  const helmet = Object.entries(helmetHeaders()).flat();
  const json = [...helmet, 'Content-Type', 'application/json; charset=utf-8'];
  const binary = [...helmet, 'Content-Type', 'application/octet-stream'];

  // JSON goes out as a string: node then writes the head and the body in one piece.
  const answerOutcome = (res: ServerResponse, outcome: InferOutcome): void => {
    const { body, headerLength } = outcome.response;
    if (Buffer.isBuffer(body)) answer(res, 200, [...binary, 'Inference-Header-Content-Length', String(headerLength)], body);
    else answer(res, 200, json, JSON.stringify(body));
  };
  const answerError = (res: ServerResponse, error: unknown): void => {
    if (error instanceof BodyAbortedError) return;
    const { status, body } = v2ErrorOf(error);
    // A body over the limit is not read to its end: close the connection behind the answer.
    answer(res, status, status === 413 ? [...json, 'Connection', 'close'] : json, JSON.stringify(body));
  };

  // A keep-alive connection sends the same Authorization header with every request: the key is
  // checked (hashed, compared with each key) on the connection's first request and whenever the
  // header changes. Comparing with the header this connection already had accepted tells its
  // sender nothing they did not send.
  const accepted = new WeakMap<Socket, string>();
  const checkKey = (req: IncomingMessage): void => {
    const header = req.headers.authorization;
    if (header !== undefined && accepted.get(req.socket) === header) return;
    assertInferenceKey(req, options.inferenceKeys);
    if (header !== undefined) accepted.set(req.socket, header);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, route: InferRoute): Promise<void> => {
    try {
      checkKey(req);
      const version = route.version === null ? null : versionPipe.transform(route.version);
      let bytes: Buffer;
      try {
        bytes = await readBoundedBody(req, options.maxBodyBytes);
      } catch (error) {
        throw error instanceof BodyTooLargeError ? new PayloadTooLargeException('request body too large') : error;
      }
      const body = route.body === 'binary' ? bytes : parseJsonBody(bytes);
      const headerLength = req.headers[INFERENCE_HEADER_LENGTH];
      answerOutcome(res, await serving.infer(route.name, version, body, typeof headerLength === 'string' ? Number(headerLength) : undefined));
    } catch (error) {
      answerError(res, error);
    }
  };

  interceptRequests(server, (req, res) => {
    const route = matchInferRoute(req.method, req.url, req.headers);
    if (route === null) return false;
    // handle() answers its own failures; should answering fail too, the connection is dropped.
    handle(req, res, route).catch(() => res.destroy());
    return true;
  });
}
