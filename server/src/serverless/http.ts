/** The platform-neutral request and response the serverless handler works on; the adapters convert API Gateway events and fetch Requests to and from them. */

export interface ServerlessRequest {
  method: string;
  /** The path as received, possibly behind a stage or base path (`/prod/v2/models/global/infer`). */
  path: string;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  /** The raw body (empty when there is none), already checked against the body size limit. */
  body: Uint8Array;
}

export interface ServerlessResponse {
  status: number;
  headers: Record<string, string>;
  /** JSON text, or the bytes of the binary tensor extension. */
  body: string | Uint8Array;
}

/** A V2 error: `{ "error": "..." }` with its status. */
export function v2ErrorResponse(status: number, error: string): ServerlessResponse {
  return jsonResponse(status, { error });
}

export function jsonResponse(status: number, value: unknown): ServerlessResponse {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(value) };
}

/** Refused before the body was read: over the limit (413). */
export function bodyTooLarge(maxBodyBytes: number): ServerlessResponse {
  return v2ErrorResponse(413, `request body too large (at most ${maxBodyBytes} bytes)`);
}

/** Lower-cases header names; the last value wins for a repeated header. */
export function lowerCaseHeaders(headers: Record<string, string | undefined> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) if (typeof value === 'string') out[name.toLowerCase()] = value;
  return out;
}
