/**
 * The inference API's hot route, `POST /v2/models/{name}[/versions/{version}]/infer`, answered in
 * front of express: no helmet middleware chain, body parser, Nest router, guard, pipe or
 * interceptor per request, which cost the event loop several times more than the prediction
 * (bench/results/serving.md). On keep-alive connections that send only this route in the plain
 * form, node:http is skipped too (boundary/fast-connections.ts); on connections node:http reads, a
 * request listener answers it. Everything that matters is kept, by calling the same code as the
 * express route: the inference-key check (assertInferenceKey), the version check (the route's
 * ZodParamPipe), the body bound (FLOCK_INFERENCE_MAX_BODY_BYTES, 413), the V2 errors (v2ErrorOf),
 * helmet's headers (collected from helmet once) and ServingService.infer, which validates the
 * tensors, batches them and writes the inference log.
 *
 * Only the canonical form is taken here: lower-case path of plain segments, no Content-Encoding,
 * a JSON (UTF-8) or binary-extension body. Anything else (gzip bodies, other content types,
 * percent-encoded names, express's case-insensitive or trailing-slash variants) goes on to express,
 * which answers it as before.
 */
import type { IncomingMessage, Server } from 'node:http';
import { BadRequestException, PayloadTooLargeException } from '@nestjs/common';
import { takeConnections, type FastAnswer } from '../boundary/fast-connections.js';
import { answer, interceptRequests } from '../boundary/fast-routes.js';
import type { RequestHead } from '../boundary/request-head.js';
import { helmetHeaders } from '../boundary/web-hygiene.js';
import { INFERENCE_HEADER_LENGTH, v2VersionParamSchema } from '../contract/index.js';
import { ZodParamPipe } from '../operators/zod-validation.js';
import { BodyAbortedError, BodyTooLargeError, readBoundedBody } from './bounded-body.js';
import { assertInferenceKey } from './inference-key.guard.js';
import type { ServingService } from './serving.service.js';
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
  return inferRouteOf(method, url, (name) => {
    const value = headers[name];
    return typeof value === 'string' ? value : undefined;
  });
}

/** The same for a head read by the keep-alive connections (boundary/fast-connections.ts). */
export function matchInferHead(head: RequestHead): InferRoute | null {
  return inferRouteOf(head.method, head.path, (name) => head.headers.get(name));
}

function inferRouteOf(method: string | undefined, url: string | undefined, header: (name: string) => string | undefined): InferRoute | null {
  if (method !== 'POST' || url === undefined) return null;
  const match = INFER_PATH.exec(url);
  if (!match) return null;
  const encoding = header('content-encoding');
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return null;
  const type = header('content-type');
  let body: InferBodyKind | null = null;
  if (header(INFERENCE_HEADER_LENGTH) !== undefined || (type !== undefined && type.startsWith('application/octet-stream'))) body = 'binary';
  else if (type !== undefined) {
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

/** What the fast path needs of a request, however it was read. */
interface InferCall {
  route: InferRoute;
  authorization: string | undefined;
  headerLength: string | undefined;
  /** The same object for every request of a connection. */
  connection: object;
}

/**
 * Answers the inference route before node:http and express: on the keep-alive connections that
 * send it only (takeConnections), and as a request listener in front of express on connections
 * that node:http reads (every other request goes on to the listeners the server had).
 */
export function installV2FastPath(server: Server, serving: ServingService, options: { inferenceKeys: readonly string[]; maxBodyBytes: number }): void {
  const versionPipe = new ZodParamPipe(v2VersionParamSchema);
  // Flat [name, value, ...] lists: writeHead takes them without building an object per answer.
  const helmet = Object.entries(helmetHeaders()).flat();
  const json = [...helmet, 'Content-Type', 'application/json; charset=utf-8'];
  const binary = [...helmet, 'Content-Type', 'application/octet-stream'];

  // A keep-alive connection sends the same Authorization header with every request: the key is
  // checked (hashed, compared with each key) on the connection's first request and whenever the
  // header changes. Comparing with the header this connection already had accepted tells its
  // sender nothing they did not send.
  const accepted = new WeakMap<object, string>();
  const checkKey = ({ authorization, connection }: InferCall): void => {
    if (authorization !== undefined && accepted.get(connection) === authorization) return;
    assertInferenceKey({ headers: { authorization } }, options.inferenceKeys);
    if (authorization !== undefined) accepted.set(connection, authorization);
  };
  const keyAccepted = (call: InferCall): boolean => {
    try {
      checkKey(call);
      return true;
    } catch {
      return false;
    }
  };

  /** The answer to a request whose body `read` resolves; rejects only with BodyAbortedError. */
  const inferAnswer = async (call: InferCall, read: () => Promise<Buffer>): Promise<FastAnswer & { close: boolean }> => {
    try {
      checkKey(call);
      const version = call.route.version === null ? null : versionPipe.transform(call.route.version);
      let bytes: Buffer;
      try {
        bytes = await read();
      } catch (error) {
        throw error instanceof BodyTooLargeError ? new PayloadTooLargeException('request body too large') : error;
      }
      const body = call.route.body === 'binary' ? bytes : parseJsonBody(bytes);
      const outcome = await serving.infer(call.route.name, version, body, call.headerLength === undefined ? undefined : Number(call.headerLength));
      const { body: answer, headerLength } = outcome.response;
      // JSON goes out as a string: the head and the body are then written in one piece.
      if (Buffer.isBuffer(answer))
        return { status: 200, headers: [...binary, 'Inference-Header-Content-Length', String(headerLength)], body: answer, close: false };
      return { status: 200, headers: json, body: JSON.stringify(answer), close: false };
    } catch (error) {
      if (error instanceof BodyAbortedError) throw error;
      const { status, body } = v2ErrorOf(error);
      // A body over the limit is not read to its end: close the connection behind the answer.
      return { status, headers: json, body: JSON.stringify(body), close: status === 413 };
    }
  };

  takeConnections(server, (head, connection) => {
    const route = matchInferHead(head);
    if (route === null) return null;
    const call: InferCall = { route, authorization: head.headers.get('authorization'), headerLength: head.headers.get(INFERENCE_HEADER_LENGTH), connection };
    // Without an accepted key the body is not read here: node:http refuses the request (401) and drops its body.
    if (!keyAccepted(call)) return null;
    return { maxBodyBytes: options.maxBodyBytes, answer: (body) => inferAnswer(call, () => Promise.resolve(body)) };
  });

  interceptRequests(server, (req, res) => {
    const route = matchInferRoute(req.method, req.url, req.headers);
    if (route === null) return false;
    const headerLength = req.headers[INFERENCE_HEADER_LENGTH];
    const call: InferCall = {
      route,
      authorization: req.headers.authorization,
      headerLength: typeof headerLength === 'string' ? headerLength : undefined,
      connection: req.socket,
    };
    // inferAnswer answers its own failures; should answering fail too, the connection is dropped.
    inferAnswer(call, () => readBoundedBody(req, options.maxBodyBytes)).then(
      ({ status, headers, body, close }) => answer(res, status, close ? [...headers, 'Connection', 'close'] : headers, body),
      () => res.destroy(),
    );
    return true;
  });
}
