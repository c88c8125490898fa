/**
 * The WHATWG fetch form, `(Request) => Promise<Response>` (Cloudflare Workers, Deno Deploy, Bun,
 * Vercel and Netlify functions, Google Cloud Run functions behind an adapter): the body is read as a
 * stream and abandoned as soon as it passes the size limit.
 */
import { bodyTooLarge, type ServerlessRequest, type ServerlessResponse } from './http.js';

/** The body's bytes, or null as soon as they exceed `maxBytes` (the rest is never read). */
export async function readBounded(request: Request, maxBytes: number): Promise<Uint8Array | null> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) return null;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

export async function requestFromFetch(request: Request, maxBodyBytes: number): Promise<ServerlessRequest | ServerlessResponse> {
  const body = await readBounded(request, maxBodyBytes);
  if (body === null) return bodyTooLarge(maxBodyBytes);
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { method: request.method, path: new URL(request.url).pathname, headers, body };
}

export function fetchResponseOf(response: ServerlessResponse): Response {
  const body = typeof response.body === 'string' ? response.body : new Uint8Array(response.body);
  return new Response(body, { status: response.status, headers: response.headers });
}
