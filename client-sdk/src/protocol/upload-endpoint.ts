/**
 * Uploads over HTTP: the coordinator's upload listener (a port of its own, served by a worker
 * thread so that receiving the bytes never runs on the event loop that runs rounds). A round's
 * plan (`round:configure`) names it with a ticket for this device and round; the device PUTs one
 * body to it and reads the same acknowledgement as `round:update`'s. Without an endpoint in the
 * plan, or when the listener cannot be reached, the device uploads over socket.io as before.
 *
 * Body: [meta length: uint32 little-endian][meta: JSON text, UTF-8][delta bytes]. The meta is the
 * upload's `round:update` message without its binary data (`updateUploadSchema`, `delta.data`
 * left out); the delta bytes are that data, in the encoding `delta.encoding` names.
 */
import { z } from 'zod';
import type { UpdateUpload } from './round-messages.js';

/** The listener's path: `PUT /v1/uploads` with `Authorization: Bearer <ticket>`. */
export const UPLOAD_PATH = '/v1/uploads';
/** The most bytes a body's meta may take (shapes of up to 10,000 tensors fit in far less). */
export const UPLOAD_META_MAX_BYTES = 256 * 1024;
/** The longest ticket the listener reads. */
export const UPLOAD_TICKET_MAX_LENGTH = 1024;
/** The body's first field: the meta's length, a uint32. */
export const UPLOAD_META_LENGTH_BYTES = 4;

export const uploadEndpointSchema = z
  .object({
    /** Bearer credential for this device's one upload to this round; it expires with the round's deadline. */
    ticket: z.string().min(1).max(UPLOAD_TICKET_MAX_LENGTH),
    /** The listener's full URL, when the operator published one (FLOCK_UPLOAD_URL). */
    url: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .optional(),
    /** Else its port on the host the device reached the coordinator at, path UPLOAD_PATH. */
    port: z.number().int().min(1).max(65_535).optional(),
  })
  .refine((endpoint) => (endpoint.url === undefined) !== (endpoint.port === undefined), { message: 'exactly one of url and port' });
export type UploadEndpoint = z.infer<typeof uploadEndpointSchema>;

/** The URL a device PUTs its upload to: the published one, or the coordinator's host at the listener's port. */
export function uploadUrl(endpoint: UploadEndpoint, serverUrl: string): string {
  if (endpoint.url !== undefined) return endpoint.url;
  // No URL class here: the protocol runs where no DOM or Node typings are (tsconfig.core.json).
  const origin = /^(https?|wss?):\/\/(\[[^\]]*\]|[^/:?#]*)/i.exec(serverUrl);
  if (!origin) throw new RangeError(`not an http(s) or ws(s) URL: ${serverUrl}`);
  const scheme = origin[1]!.toLowerCase().replace(/^ws/, 'http');
  return `${scheme}://${origin[2]}:${endpoint.port}${UPLOAD_PATH}`;
}

/** An upload as one HTTP body (the layout above). */
export function encodeUploadBody(upload: UpdateUpload): Uint8Array<ArrayBuffer> {
  const { delta, ...rest } = upload;
  const { data, ...described } = delta;
  // Every non-ASCII character escaped, so that the meta's bytes are its char codes (no TextEncoder needed).
  const meta = JSON.stringify({ ...rest, delta: described }).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const body = new Uint8Array(UPLOAD_META_LENGTH_BYTES + meta.length + bytes.byteLength);
  new DataView(body.buffer).setUint32(0, meta.length, true);
  for (let i = 0; i < meta.length; i++) body[UPLOAD_META_LENGTH_BYTES + i] = meta.charCodeAt(i);
  body.set(bytes, UPLOAD_META_LENGTH_BYTES + meta.length);
  return body;
}

/** A body's meta (JSON, not yet checked: the receiver's schema does that) and its delta's bytes; throws when the layout is broken. */
export function decodeUploadBody(body: Uint8Array): { meta: unknown; data: Uint8Array } {
  const offset = body.byteLength >= UPLOAD_META_LENGTH_BYTES ? uploadDeltaOffset(body) : null;
  if (offset === null || offset > body.byteLength) throw new RangeError('not an upload body: bad meta length');
  const metaBytes = body.subarray(UPLOAD_META_LENGTH_BYTES, offset);
  const { TextDecoder: Utf8Decoder } = globalThis as { TextDecoder?: new () => { decode(bytes: Uint8Array): string } };
  let text = '';
  if (Utf8Decoder) text = new Utf8Decoder().decode(metaBytes);
  else for (const byte of metaBytes) text += String.fromCharCode(byte); // the SDK's own meta is ASCII
  return { meta: JSON.parse(text) as unknown, data: body.subarray(offset) };
}

/** How many bytes precede the delta in a body whose first four bytes are `prefix`; null when the meta is too long. */
export function uploadDeltaOffset(prefix: Uint8Array): number | null {
  const metaLength = new DataView(prefix.buffer, prefix.byteOffset, UPLOAD_META_LENGTH_BYTES).getUint32(0, true);
  return metaLength > UPLOAD_META_MAX_BYTES ? null : UPLOAD_META_LENGTH_BYTES + metaLength;
}
