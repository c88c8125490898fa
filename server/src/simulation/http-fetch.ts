/**
 * A minimal `fetch` over node:http without keep-alive. The simulator polls the coordinator that
 * runs in the same process; with pooled keep-alive sockets, a request sent after the event loop was
 * busy (evaluating a model) can race the server closing the idle socket and fail with ECONNRESET,
 * which fetch does not retry for a POST. One connection per request avoids the race.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const noKeepAliveFetch: typeof fetch = (input, init = {}) =>
  new Promise<Response>((resolve, reject) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => (headers[key] = value));
    const body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body instanceof Uint8Array ? Buffer.from(init.body) : null;
    if (init.body != null && body === null) {
      reject(new TypeError('noKeepAliveFetch supports string and byte bodies only'));
      return;
    }
    if (body) headers['content-length'] = String(body.byteLength);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: init.method ?? 'GET', headers, agent: false, signal: init.signal ?? undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 500;
        const payload = status === 204 || status === 304 ? null : Buffer.concat(chunks);
        resolve(new Response(payload, { status, statusText: res.statusMessage ?? '' }));
      });
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
