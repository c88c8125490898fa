import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NestExpressApplication } from '@nestjs/platform-express';
import helmet from 'helmet';
import type { FlockConfig } from '../config/config.js';

/** Largest JSON request body: the REST API's bodies are a few hundred bytes; model uploads are multipart, bounded separately. */
export const JSON_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * Headers for socket.io's own HTTP answers (long-polling, handshake), which engine.io writes before
 * express sees the request: the part of helmet's defaults that matters for them.
 */
export const SOCKET_HTTP_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'SAMEORIGIN',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

/**
 * Helmet's Content-Security-Policy is left off: JSON answers run nothing, the dashboard page sends
 * its own policy, and the Swagger UI at /api/docs needs inline scripts.
 */
const HELMET_OPTIONS = { contentSecurityPolicy: false } as const;

/**
 * The headers helmet sets on every answer (they depend on nothing in the request), for a route
 * answered before express (the inference fast path): collected once from helmet itself.
 */
export function helmetHeaders(): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader: (name: string, value: string | number) => (headers[name] = String(value)),
    removeHeader: (name: string) => delete headers[name],
  };
  let done = false;
  helmet(HELMET_OPTIONS)({} as IncomingMessage, recorder as unknown as ServerResponse, () => (done = true));
  if (!done) throw new Error('helmet did not finish synchronously');
  return headers;
}

/**
 * Every HTTP answer of the express app gets helmet's headers (nosniff, frame and referrer policies,
 * HSTS, ...) and no `X-Powered-By`; request bodies are JSON only and bounded (`routeBodyParsers` registers a
 * route's own bounded parsers before the app-wide one); `X-Forwarded-For` is
 * believed for exactly `FLOCK_TRUST_PROXY` hops, the rule client-address.ts applies to sockets.
 */
export function applyWebHygiene(app: NestExpressApplication, config: FlockConfig, routeBodyParsers: () => void = () => undefined): void {
  app.disable('x-powered-by');
  if (config.trustProxyHops > 0) app.set('trust proxy', config.trustProxyHops);
  app.use(helmet(HELMET_OPTIONS));
  // Routes with their own body parsers (/v2's tensors), after helmet so that their errors get its headers too.
  routeBodyParsers();
  // No urlencoded parser: no endpoint takes forms, and qs-style nesting is one more parser to attack.
  app.useBodyParser('json', { limit: JSON_BODY_LIMIT_BYTES });
}
