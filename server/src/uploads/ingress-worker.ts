/**
 * The upload listener's worker thread (upload-ingress.service.ts starts it): an HTTP server that
 * receives `PUT /v1/uploads` bodies, checks the ticket and the sizes, writes the delta's bytes into a
 * shared buffer and hands the main thread only a slot number and the meta's text. That buffer is the
 * round's receive area when the main thread gave one (the aggregator's wasm memory, where the kernels
 * measure and fold the upload without copying it), else the slot's own. The socket reads
 * and their garbage live in this thread's small heap, not in the coordinator's, whose collector would
 * otherwise mark its whole heap every few dozen uploads (bench/results/upload-cost.md).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import {
  UPLOAD_META_LENGTH_BYTES,
  UPLOAD_META_MAX_BYTES,
  UPLOAD_PATH,
  UPLOAD_TICKET_MAX_LENGTH,
  uploadDeltaOffset,
  type RejectionReason,
  type UpdateResult,
} from '@flock/client-sdk/protocol';
import type { IngressCommand, IngressEvent, IngressRefusal, IngressSettings } from './ingress-messages.js';
import type { RoundReceiveArea } from './upload-endpoints.js';
import { UploadTickets } from './upload-tickets.js';

const settings = workerData as IngressSettings;
const port = parentPort!;
const tickets = new UploadTickets(settings.key);
const post = (event: IngressEvent): void => port.postMessage(event);

/**
 * Requests that may wait unread for a slot (each holds a connection and what the kernel buffers of
 * its body); past them the listener answers 503 and devices upload over the socket.
 */
const MAX_WAITING = 64 * settings.slots;
/** Slot buffers grow in steps of 64 KiB so that one size serves a model's uploads of every encoding. */
const SLOT_GRANULE = 64 * 1024;
const SCRATCH_BYTES = 64 * 1024;

interface Slot {
  buffer: SharedArrayBuffer | null;
  /** Whether the main thread has not seen `buffer` yet. */
  fresh: boolean;
  busy: boolean;
}

const slots: Slot[] = Array.from({ length: settings.slots }, () => ({ buffer: null, fresh: false, busy: false }));
/** Requests waiting for a slot: each is handed the next one freed. */
const waiting: ((slot: number) => void)[] = [];
const pending = new Map<number, { response: ServerResponse; slot: number }>();
let nextId = 1;
/**
 * The round in flight's receive area: its uploads go there, slot i at offsets[i], so a region is
 * written only while its slot is busy with one upload, and read by the main thread only until that
 * upload is answered. A body already being written into an area that is then replaced or cleared
 * finishes there (the memory lives while referenced; the main thread no longer reads it).
 */
let area: RoundReceiveArea | null = null;

const CORS_HEADERS = {
  // The ticket is the credential (no cookies), so any origin may send it: browsers ask first (preflight).
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'PUT',
  'access-control-allow-headers': 'authorization, content-type',
  'access-control-max-age': '600',
};

function answer(response: ServerResponse, status: number, result: UpdateResult): void {
  if (response.headersSent || response.destroyed) return;
  const body = JSON.stringify(result);
  response.writeHead(status, {
    ...CORS_HEADERS,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  response.end(body);
}

function refuse(response: ServerResponse, status: number, refusal: IngressRefusal, reason: RejectionReason, message: string): void {
  post({ type: 'refused', reason: refusal });
  answer(response, status, { accepted: false, reason, message });
}

function acquireSlot(): number | null {
  const index = slots.findIndex((slot) => !slot.busy);
  if (index === -1) return null;
  slots[index]!.busy = true;
  return index;
}

function releaseSlot(index: number): void {
  const next = waiting.shift();
  if (next) next(index);
  else slots[index]!.busy = false;
}

/** The slot's buffer, replaced by a larger one when `bytes` do not fit. */
function slotBuffer(index: number, bytes: number): SharedArrayBuffer {
  const slot = slots[index]!;
  if (!slot.buffer || slot.buffer.byteLength < bytes) {
    slot.buffer = new SharedArrayBuffer(Math.max(SLOT_GRANULE, Math.ceil(bytes / SLOT_GRANULE) * SLOT_GRANULE));
    slot.fresh = true;
  }
  return slot.buffer;
}

/** A request the listener answers itself, before reading its body. */
type Refusal = [status: number, refusal: IngressRefusal, reason: RejectionReason, message: string];

/** The upload's ticket claims and declared size, or why the request is refused: path, ticket, then size. */
function admit(request: IncomingMessage, path: string): { clientId: string; roundId: string; declared: number } | Refusal {
  if (path !== UPLOAD_PATH || request.method !== 'PUT') return [404, 'not_found', 'malformed', `only PUT ${UPLOAD_PATH} is served here`];
  const authorization = request.headers.authorization ?? '';
  const ticket = authorization.startsWith('Bearer ') ? authorization.slice(7) : '';
  const claims = ticket.length <= UPLOAD_TICKET_MAX_LENGTH ? tickets.verify(ticket, Date.now()) : null;
  if (!claims) return [401, 'unauthorized', 'not_selected', 'missing, invalid or expired upload ticket'];
  const declared = Number(request.headers['content-length']);
  const limit = UPLOAD_META_LENGTH_BYTES + UPLOAD_META_MAX_BYTES + settings.maxUploadBytes;
  if (!Number.isSafeInteger(declared) || declared < UPLOAD_META_LENGTH_BYTES) return [411, 'malformed', 'malformed', 'an upload needs a Content-Length'];
  if (declared > limit) return [413, 'too_large', 'payload_too_large', `upload of ${declared} bytes; the limit is ${limit} with its meta`];
  return { clientId: claims.clientId, roundId: claims.roundId, declared };
}

function handle(request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? '').split('?')[0]!;
  if (request.method === 'OPTIONS' && path === UPLOAD_PATH) {
    response.writeHead(204, CORS_HEADERS).end();
    return;
  }
  const admitted = admit(request, path);
  if (Array.isArray(admitted)) return refuse(response, ...admitted);
  const start = (slot: number): void => receive(request, response, { ...admitted, slot });
  const slot = acquireSlot();
  if (slot !== null) return start(slot);
  if (waiting.length >= MAX_WAITING) {
    // No verdict: the device uploads over the socket instead (or retries).
    post({ type: 'refused', reason: 'busy' });
    response.writeHead(503, { ...CORS_HEADERS, 'retry-after': '1', 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: 'busy', message: 'the upload listener is at capacity: retry, or upload over the socket' }));
    return;
  }
  // Unread until a slot frees: TCP's flow control holds the device back meanwhile.
  request.pause();
  waiting.push((freed) => (request.destroyed ? releaseSlot(freed) : start(freed)));
}

/** Where bytes pass on their way into a slot (see copyToShared). */
const scratch = new Uint8Array(SCRATCH_BYTES + 8);

/**
 * target[at..] = bytes, into shared memory. V8 copies into a SharedArrayBuffer with relaxed atomic
 * words only when source and target are 8-byte aligned alike, else byte by byte (measured 8x slower
 * than a memcpy here); socket reads start anywhere, so each piece is first copied (a plain memcpy)
 * into a scratch buffer at the target's alignment.
 */
function copyToShared(bytes: Uint8Array, target: Uint8Array, at: number): void {
  for (let start = 0; start < bytes.byteLength; start += SCRATCH_BYTES) {
    const piece = bytes.subarray(start, start + SCRATCH_BYTES);
    const shift = (target.byteOffset + at + start) % 8;
    scratch.set(piece, shift);
    target.set(scratch.subarray(shift, shift + piece.byteLength), at + start);
  }
}

/** Reads one body into `slot`: its meta prefix into a small buffer, the delta's bytes into the slot's shared buffer. */
function receive(request: IncomingMessage, response: ServerResponse, job: { clientId: string; roundId: string; slot: number; declared: number }): void {
  const { slot, declared } = job;
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    releaseSlot(slot);
  };
  // The meta's length first, then a buffer of the meta's size (a few hundred bytes, from Node's pool).
  let prefix = Buffer.allocUnsafe(UPLOAD_META_LENGTH_BYTES);
  let prefixLength = UPLOAD_META_LENGTH_BYTES; // until the meta's length is read
  let prefixFilled = 0;
  let target: Uint8Array | null = null;
  /** The receive area `target` lies in, if any. */
  let into: RoundReceiveArea | null = null;
  let written = 0;
  let failed = false;
  const fail = (status: number, refusal: IngressRefusal, reason: RejectionReason, message: string): void => {
    failed = true;
    release();
    response.setHeader('connection', 'close');
    refuse(response, status, refusal, reason, message);
  };
  request.on('data', (chunk: Buffer) => {
    if (failed) return;
    let at = 0;
    while (at < chunk.byteLength && !failed) {
      if (!target) {
        const take = Math.min(prefixLength - prefixFilled, chunk.byteLength - at);
        chunk.copy(prefix, prefixFilled, at, at + take);
        prefixFilled += take;
        at += take;
        if (prefixFilled < prefixLength) continue;
        if (prefixLength === UPLOAD_META_LENGTH_BYTES) {
          const offset = uploadDeltaOffset(prefix.subarray(0, UPLOAD_META_LENGTH_BYTES));
          if (offset === null || offset > declared) return fail(400, 'malformed', 'malformed', 'the body does not start with a valid meta length');
          prefixLength = offset;
          prefix = Buffer.concat([prefix], prefixLength);
          if (prefixFilled < prefixLength) continue;
        }
        const bytes = declared - prefixLength;
        const offset = area && area.roundId === job.roundId && bytes <= area.bytesPerSlot ? area.offsets[slot] : undefined;
        into = offset === undefined ? null : area;
        target = into ? new Uint8Array(into.buffer, offset, bytes) : new Uint8Array(slotBuffer(slot, bytes), 0, bytes);
        continue;
      }
      const take = Math.min(chunk.byteLength - at, target.byteLength - written);
      if (take < chunk.byteLength - at) return fail(400, 'malformed', 'malformed', 'the body is longer than its Content-Length');
      copyToShared(chunk.subarray(at, at + take), target, written);
      written += take;
      at += take;
    }
  });
  let ended = false;
  request.on('end', () => {
    ended = true;
    if (failed) return;
    if (!target || written !== target.byteLength) return fail(400, 'incomplete', 'malformed', 'the body ended before its Content-Length');
    const id = nextId++;
    const entry = slots[slot]!;
    const fresh = !into && entry.fresh; // the slot's own buffer, new to the main thread
    if (fresh) entry.fresh = false;
    released = true; // now the answer's to release
    pending.set(id, { response, slot });
    post({
      type: 'upload',
      id,
      clientId: job.clientId,
      roundId: job.roundId,
      meta: prefix.toString('utf8', UPLOAD_META_LENGTH_BYTES, prefixLength),
      slot,
      ...(into ? { area: into.roundId } : {}),
      ...(fresh ? { buffer: entry.buffer! } : {}),
      length: written,
      arrivedAt: performance.timeOrigin + performance.now(),
    });
  });
  request.on('close', () => {
    if (ended || failed) return;
    failed = true; // the device went away mid-body (or the request timed out)
    release();
    post({ type: 'refused', reason: 'incomplete' });
  });
  request.resume();
}

port.on('message', (message: IngressCommand) => {
  if (message.type === 'area') {
    area = message.area;
    return;
  }
  const entry = pending.get(message.id);
  if (!entry) return;
  pending.delete(message.id);
  releaseSlot(entry.slot);
  answer(entry.response, message.result.accepted ? 200 : 422, message.result);
});

const server = createServer({ requestTimeout: settings.requestTimeoutMs, headersTimeout: Math.min(settings.requestTimeoutMs, 10_000) }, handle);
// Past the slots and the waiting line, a new connection is closed at once (a burst must not take
// the file descriptors the devices' sockets need); the SDK then uploads over its socket.
server.maxConnections = settings.slots + MAX_WAITING + 64;
server.on('clientError', (_error, socket) => socket.destroy());
server.once('error', (error: NodeJS.ErrnoException) => post({ type: 'listenFailed', code: error.code, message: error.message }));
server.listen(settings.port, settings.host, () => {
  const address = server.address();
  post({ type: 'listening', port: typeof address === 'object' && address ? address.port : settings.port });
});
