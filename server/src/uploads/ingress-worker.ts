/**
 * The upload listener's worker thread (upload-ingress.service.ts starts it): an HTTP/1.1 server that
 * receives `PUT /v1/uploads` bodies (upload-connection.ts, one per connection), checks the ticket and
 * the sizes, has the delta's bytes written into a shared buffer and hands the main thread only a slot
 * number and the meta's text. That buffer is the round's receive area when the main thread gave one
 * (the aggregator's wasm memory, where the kernels measure and fold the upload without copying it),
 * else the slot's own.
 *
 * The socket reads the delta straight into that buffer (net's `onread` with a buffer of ours): no
 * copy in JavaScript and no buffer allocated per read, which with node:http cost more than twice the
 * rest of the receiving and kept this thread's collector busy (bench/results/upload-cost.md). So this
 * thread speaks HTTP itself, narrowly (upload-connection.ts, request-head.ts).
 */
import { createServer } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { UPLOAD_META_LENGTH_BYTES, UPLOAD_META_MAX_BYTES, UPLOAD_PATH, UPLOAD_TICKET_MAX_LENGTH } from '@flock/client-sdk/protocol';
import type { IngressCommand, IngressEvent, IngressSettings } from './ingress-messages.js';
import { contentLength, type RequestHead } from '../boundary/request-head.js';
import { UploadConnection, type AdmittedUpload, type ConnectionHost, type Refusal } from './upload-connection.js';
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
/** Open connections at most (each a file descriptor): past them a new one is closed at once. */
const MAX_CONNECTIONS = settings.slots + MAX_WAITING + 64;

interface Slot {
  buffer: SharedArrayBuffer | null;
  /** Whether the main thread has not seen `buffer` yet. */
  fresh: boolean;
  busy: boolean;
}

const slots: Slot[] = Array.from({ length: settings.slots }, () => ({ buffer: null, fresh: false, busy: false }));
/** Requests waiting for a slot: each is handed the next one freed. */
const waiting: ((slot: number) => void)[] = [];
const pending = new Map<number, { connection: UploadConnection; slot: number }>();
let nextId = 1;
/**
 * The round in flight's receive area: its uploads go there, slot i at offsets[i], so a region is
 * written only while its slot is busy with one upload, and read by the main thread only until that
 * upload is answered. A body already being written into an area that is then replaced or cleared
 * finishes there (the memory lives while referenced; the main thread no longer reads it).
 */
let area: RoundReceiveArea | null = null;

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

/** The upload's ticket claims and declared size, or why the request is refused: path, ticket, then size. */
function admit(head: RequestHead): AdmittedUpload | Refusal {
  if (head.path !== UPLOAD_PATH || head.method !== 'PUT') return [404, 'not_found', 'malformed', `only PUT ${UPLOAD_PATH} is served here`];
  const authorization = head.headers.get('authorization') ?? '';
  const ticket = authorization.startsWith('Bearer ') ? authorization.slice(7) : '';
  const claims = ticket.length <= UPLOAD_TICKET_MAX_LENGTH ? tickets.verify(ticket, Date.now()) : null;
  if (!claims) return [401, 'unauthorized', 'not_selected', 'missing, invalid or expired upload ticket'];
  const declared = contentLength(head);
  const limit = UPLOAD_META_LENGTH_BYTES + UPLOAD_META_MAX_BYTES + settings.maxUploadBytes;
  if (declared === null || declared < UPLOAD_META_LENGTH_BYTES) return [411, 'malformed', 'malformed', 'an upload needs a Content-Length'];
  if (declared > limit) return [413, 'too_large', 'payload_too_large', `upload of ${declared} bytes; the limit is ${limit} with its meta`];
  return { clientId: claims.clientId, roundId: claims.roundId, declared };
}

let connections = 0;

/** What a connection needs of this thread: tickets, slots, the round's receive area, the main thread. */
const host: ConnectionHost = {
  // The head must arrive within this (as node:http's headersTimeout).
  headTimeoutMs: Math.min(settings.requestTimeoutMs, 10_000),
  requestTimeoutMs: settings.requestTimeoutMs,
  admit,
  claimSlot(whenFree) {
    const slot = acquireSlot();
    if (slot !== null) return slot;
    if (waiting.length >= MAX_WAITING) return 'busy';
    waiting.push(whenFree);
    return null;
  },
  releaseSlot,
  targetFor(slot, roundId, bytes) {
    const offset = area && area.roundId === roundId && bytes <= area.bytesPerSlot ? area.offsets[slot] : undefined;
    if (area && offset !== undefined) return { target: new Uint8Array(area.buffer, offset, bytes), area: area.roundId };
    return { target: new Uint8Array(slotBuffer(slot, bytes), 0, bytes), area: null };
  },
  deliver(connection, { area: inArea, ...body }) {
    const id = nextId++;
    const entry = slots[body.slot]!;
    const fresh = inArea === null && entry.fresh; // the slot's own buffer, new to the main thread
    if (fresh) entry.fresh = false;
    pending.set(id, { connection, slot: body.slot });
    post({
      type: 'upload',
      id,
      ...body,
      ...(inArea !== null ? { area: inArea } : {}),
      ...(fresh ? { buffer: entry.buffer! } : {}),
      arrivedAt: performance.timeOrigin + performance.now(),
    });
  },
  refused: (reason) => post({ type: 'refused', reason }),
  closed: () => void connections--,
};

port.on('message', (message: IngressCommand) => {
  if (message.type === 'area') {
    area = message.area;
    return;
  }
  const entry = pending.get(message.id);
  if (!entry) return;
  pending.delete(message.id);
  releaseSlot(entry.slot);
  entry.connection.verdict(message.result);
});

// The accepted socket's handle is taken over by an UploadConnection (net's `onread` is a client-socket
// option only); the server's own socket object is dropped unread. Past MAX_CONNECTIONS a new
// connection is closed at once (a burst must not take the file descriptors the devices' sockets
// need); the SDK then uploads over its socket.
const server = createServer({ pauseOnConnect: true }, (accepted) => {
  const owner = accepted as unknown as { _handle?: object | null };
  const handle = owner._handle;
  // No handle to take (a runtime without it): closed, as a connection past the limit is.
  if (!handle || connections >= MAX_CONNECTIONS) return void accepted.destroy();
  connections++;
  owner._handle = null;
  accepted.destroy();
  new UploadConnection(handle, host);
});
server.once('error', (error: NodeJS.ErrnoException) => post({ type: 'listenFailed', code: error.code, message: error.message }));
server.listen(settings.port, settings.host, () => {
  const address = server.address();
  post({ type: 'listening', port: typeof address === 'object' && address ? address.port : settings.port });
});
