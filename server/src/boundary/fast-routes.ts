/**
 * Hot routes answered by a plain node:http listener in front of express (FLOCK_INFERENCE_FAST_PATH):
 * the inference route (serving/v2-fast-path.ts) and the precomputed-prediction lookup
 * (precompute/prediction-fast-path.ts). Each takes only the canonical form of its route and hands
 * everything else on to the listeners the server had, so express answers it as before.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** Puts `take` in front of the server's request listeners; `pass()` hands the request on to them (at most once, before answering). */
export function interceptRequests(server: Server, take: (req: IncomingMessage, res: ServerResponse, pass: () => void) => boolean): void {
  const next = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const pass = (): void => {
      for (const listener of next) listener.call(server, req, res);
    };
    if (!take(req, res, pass)) pass();
  });
}

/** The answer's head as a flat [name, value, ...] list (writeHead takes it without building an object). */
export function answer(res: ServerResponse, status: number, headers: readonly string[], body: Buffer | string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, [...headers, 'Content-Length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength)]);
  res.end(body);
}
