/**
 * The head of an HTTP/1.1 request (RFC 9112), read strictly by the listeners that speak HTTP
 * themselves (the upload listener; the inference route's keep-alive connections,
 * fast-connections.ts): anything but a plain request line and plain header fields is refused
 * rather than interpreted: no obs-fold, no bare CR or LF, no control characters, one
 * Content-Length, no Transfer-Encoding beside it. Pure.
 */

/** The longest head the listener reads (Node's own default limit is the same 16 KiB). */
export const MAX_HEAD_BYTES = 16 * 1024;

export interface RequestHead {
  method: string;
  version: '1.0' | '1.1';
  /** The request target without its query. */
  path: string;
  /** Field names in lower case; repeated fields joined with ", " (Content-Length must not differ). */
  headers: ReadonlyMap<string, string>;
}

/** Why a head is refused: 400, or 431 when it does not end within MAX_HEAD_BYTES. */
export interface HeadProblem {
  status: 400 | 431;
  message: string;
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const REQUEST_LINE = new RegExp(`^(${TOKEN}) ([\\x21-\\x7e]+) HTTP/1\\.([01])$`);
// Field values: visible ASCII, space, tab and obs-text; never CR, LF or other control characters.
const FIELD = new RegExp(`^(${TOKEN}):[ \\t]*([\\x20-\\x7e\\x80-\\xff\\t]*?)[ \\t]*$`);
const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** Where the body starts in `bytes[0..length)` (just past the head's blank line); -1 while the head is incomplete. */
export function headEnd(bytes: Buffer, length: number): number {
  const at = bytes.subarray(0, length).indexOf(CRLF_CRLF);
  return at < 0 ? -1 : at + CRLF_CRLF.length;
}

/** Parses a complete head: `bytes` up to and including its blank line. */
export function parseRequestHead(bytes: Buffer): RequestHead | HeadProblem {
  // latin1: one character per byte, so no byte can hide in a decoding.
  const lines = bytes.toString('latin1', 0, bytes.length - CRLF_CRLF.length).split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0]!);
  if (!requestLine) return { status: 400, message: 'malformed request line' };
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const field = FIELD.exec(line);
    if (!field) return { status: 400, message: 'malformed header field' };
    const name = field[1]!.toLowerCase();
    const value = field[2]!;
    const known = headers.get(name);
    if (known === undefined) headers.set(name, value);
    else if (name === 'content-length') {
      if (known !== value) return { status: 400, message: 'conflicting Content-Length fields' };
    } else headers.set(name, `${known}, ${value}`);
  }
  if (headers.has('transfer-encoding') && headers.has('content-length')) return { status: 400, message: 'Transfer-Encoding and Content-Length together' };
  return { method: requestLine[1]!, version: requestLine[3] === '1' ? '1.1' : '1.0', path: requestLine[2]!.split('?')[0]!, headers };
}

/** The head's Content-Length as a number: null when absent or not plain decimal digits (at most 15: a safe integer). */
export function contentLength(head: RequestHead): number | null {
  const length = head.headers.get('content-length');
  return length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : null;
}

export function isHeadProblem(head: RequestHead | HeadProblem): head is HeadProblem {
  return 'status' in head;
}
