/**
 * A minimal `fetch` over node:http without keep-alive. The simulator polls the coordinator that
 * runs in the same process; with pooled keep-alive sockets, a request sent after the event loop was
 * busy (evaluating a model) can race the server closing the idle socket and fail with ECONNRESET,
 * which fetch does not retry for a POST. One connection per request avoids the race.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const noKeepAliveFetch: typeof fetch = async (input, init = {}) => {
  // A Request serializes any body (JSON text, bytes, multipart FormData) and sets its content type.
  const request = new Request(input, init);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : null;
  const headers: Record<string, string> = {};
  request.headers.forEach((value, key) => (headers[key] = value));
  if (body) headers['content-length'] = String(body.byteLength);
  const send = new URL(request.url).protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Response>((resolve, reject) => {
    const req = send(request.url, { method: request.method, headers, agent: false, signal: init.signal ?? undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 500;
        const payload = status === 204 || status === 304 ? null : Buffer.concat(chunks);
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) responseHeaders.append(name, item);
        }
        resolve(new Response(payload, { status, statusText: res.statusMessage ?? '', headers: responseHeaders }));
      });
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
};
