/**
 * The upload listener's worker thread (upload-ingress.service.ts starts it): an HTTP/1.1 server that
 * receives `PUT /v1/uploads` bodies, checks the ticket and the sizes, has the delta's bytes written
 * into a shared buffer and hands the main thread only a slot number and the meta's text. That buffer
 * is the round's receive area when the main thread gave one (the aggregator's wasm memory, where the
 * kernels measure and fold the upload without copying it), else the slot's own.
 *
 * The socket reads the delta straight into that buffer (net's `onread` with a buffer of ours): no
 * copy in JavaScript and no buffer allocated per read, which with node:http cost more than twice the
 * rest of the receiving and kept this thread's collector busy (bench/results/upload-cost.md). So this
 * thread speaks HTTP itself, narrowly: a strict request head (request-head.ts), one request per
 * connection, answered with `Connection: close`; the head and the body's meta pass through a small
 * per-connection buffer first.
 */
import { createServer, Socket } from 'node:net';
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
import { headEnd, isHeadProblem, MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from './request-head.js';
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
/** Open connections at most (each a file descriptor): past them a new one is closed at once. */
const MAX_CONNECTIONS = settings.slots + MAX_WAITING + 64;
/** The head must arrive within this (as node:http's headersTimeout). */
const HEAD_TIMEOUT_MS = Math.min(settings.requestTimeoutMs, 10_000);
/** What a refused request's unread body may still send before the connection is cut. */
const DRAIN_BYTES = 1 << 20;

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

const CORS_HEADERS: Record<string, string> = {
  // The ticket is the credential (no cookies), so any origin may send it: browsers ask first (preflight).
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'PUT',
  'access-control-allow-headers': 'authorization, content-type',
  'access-control-max-age': '600',
};
const STATUS_TEXT: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  411: 'Length Required',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

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
function admit(head: RequestHead): { clientId: string; roundId: string; declared: number } | Refusal {
  if (head.path !== UPLOAD_PATH || head.method !== 'PUT') return [404, 'not_found', 'malformed', `only PUT ${UPLOAD_PATH} is served here`];
  const authorization = head.headers.get('authorization') ?? '';
  const ticket = authorization.startsWith('Bearer ') ? authorization.slice(7) : '';
  const claims = ticket.length <= UPLOAD_TICKET_MAX_LENGTH ? tickets.verify(ticket, Date.now()) : null;
  if (!claims) return [401, 'unauthorized', 'not_selected', 'missing, invalid or expired upload ticket'];
  const length = head.headers.get('content-length');
  const declared = length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : NaN;
  const limit = UPLOAD_META_LENGTH_BYTES + UPLOAD_META_MAX_BYTES + settings.maxUploadBytes;
  if (!(declared >= UPLOAD_META_LENGTH_BYTES)) return [411, 'malformed', 'malformed', 'an upload needs a Content-Length'];
  if (declared > limit) return [413, 'too_large', 'payload_too_large', `upload of ${declared} bytes; the limit is ${limit} with its meta`];
  return { clientId: claims.clientId, roundId: claims.roundId, declared };
}

/** Where every connection's head and meta bytes are read before being kept (reads are handled one at a time). */
const readScratch = Buffer.allocUnsafe(SCRATCH_BYTES);
let connections = 0;

/**
 * One device's connection: its head and the body's meta are read into `early` (through
 * readScratch), then the delta's bytes straight into their target, then the round engine's verdict
 * is written back and the connection closed.
 */
class UploadConnection {
  private state: 'head' | 'waiting' | 'meta' | 'delta' | 'answering' | 'done' = 'head';
  private early = Buffer.allocUnsafe(1024);
  private earlyLength = 0;
  /** Where the body starts in `early`. */
  private bodyStart = 0;
  private job: { clientId: string; roundId: string; declared: number } | null = null;
  private slot: number | null = null;
  private target: Uint8Array | null = null;
  /** The receive area `target` lies in, if any. */
  private into: RoundReceiveArea | null = null;
  private meta = '';
  private written = 0;
  private drained = 0;
  private timer: NodeJS.Timeout;
  private readonly socket: Socket;

  constructor(handle: object) {
    this.socket = new Socket({
      handle,
      readable: true,
      writable: true,
      allowHalfOpen: true,
      onread: { buffer: () => this.nextBuffer(), callback: (bytes: number, buffer: Uint8Array) => this.onRead(bytes, buffer) },
    } as ConstructorParameters<typeof Socket>[0]);
    this.timer = setTimeout(() => this.socket.destroy(), HEAD_TIMEOUT_MS);
    this.socket.on('error', () => undefined); // 'close' follows
    this.socket.on('end', () => this.onEnd());
    this.socket.on('close', () => this.onClose());
    this.socket.resume();
  }

  /** The buffer the next read lands in: the delta's own place once it is known, else the scratch. */
  private nextBuffer(): Uint8Array {
    return this.state === 'delta' && this.target && this.written < this.target.byteLength ? this.target.subarray(this.written) : readScratch;
  }

  /** false pauses reading. */
  private onRead(bytes: number, buffer: Uint8Array): boolean {
    switch (this.state) {
      case 'delta': {
        const target = this.target!;
        // The first read after a pause lands where the socket was pointed when it paused (the scratch).
        if (buffer.buffer !== target.buffer || buffer.byteOffset !== target.byteOffset + this.written) {
          if (this.written + bytes > target.byteLength) return this.fail(400, 'malformed', 'malformed', 'the body is longer than its Content-Length');
          copyToShared(buffer.subarray(0, bytes), target, this.written);
        }
        this.written += bytes;
        if (this.written < target.byteLength) return true;
        this.received();
        return false;
      }
      case 'head':
      case 'meta':
        this.keep(buffer.subarray(0, bytes));
        return this.advance();
      case 'answering':
        // Past its Content-Length, before its verdict (reading pauses then, so only a stray read): never a next request.
        return this.fail(400, 'malformed', 'malformed', 'the body is longer than its Content-Length');
      default:
        // Refused: what the device still sends is read and dropped, up to a bound, so that it reads the answer.
        this.drained += bytes;
        if (this.drained > DRAIN_BYTES) this.socket.destroy();
        return true;
    }
  }

  private keep(bytes: Uint8Array): void {
    if (this.earlyLength + bytes.byteLength > this.early.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.early.length, this.earlyLength + bytes.byteLength));
      this.early.copy(grown, 0, 0, this.earlyLength);
      this.early = grown;
    }
    this.early.set(bytes, this.earlyLength);
    this.earlyLength += bytes.byteLength;
  }

  /** Goes as far as the bytes kept allow; false pauses reading. */
  private advance(): boolean {
    if (this.state === 'head') {
      const end = headEnd(this.early, this.earlyLength);
      if (end < 0 && this.earlyLength < MAX_HEAD_BYTES) return true;
      if (end < 0 || end > MAX_HEAD_BYTES)
        return this.answerAndDrain(431, { error: 'head_too_large', message: `a request head ends within ${MAX_HEAD_BYTES} bytes` });
      this.bodyStart = end;
      return this.onHead(this.early.subarray(0, end));
    }
    if (this.state !== 'meta') return true;
    const body = this.early.subarray(this.bodyStart, this.earlyLength);
    const { declared } = this.job!;
    if (body.byteLength < UPLOAD_META_LENGTH_BYTES) return true;
    const offset = uploadDeltaOffset(body.subarray(0, UPLOAD_META_LENGTH_BYTES));
    if (offset === null || offset > declared) return this.fail(400, 'malformed', 'malformed', 'the body does not start with a valid meta length');
    if (body.byteLength < offset) return true;
    this.meta = body.toString('utf8', UPLOAD_META_LENGTH_BYTES, offset);
    return this.startDelta(declared - offset, body.subarray(offset));
  }

  private onHead(bytes: Buffer): boolean {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.socket.destroy(), settings.requestTimeoutMs);
    const head = parseRequestHead(bytes);
    if (isHeadProblem(head)) return this.answerAndDrain(head.status, { error: 'bad_request', message: head.message });
    if (head.method === 'OPTIONS' && head.path === UPLOAD_PATH) return this.answerAndDrain(204, null);
    const admitted = admit(head);
    if (Array.isArray(admitted)) return this.refuse(...admitted);
    this.job = admitted;
    if (/^\s*100-continue\s*$/i.test(head.headers.get('expect') ?? '')) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    const slot = acquireSlot();
    if (slot !== null) return this.start(slot);
    if (waiting.length >= MAX_WAITING) {
      // No verdict: the device uploads over the socket instead (or retries).
      post({ type: 'refused', reason: 'busy' });
      return this.answerAndDrain(
        503,
        { error: 'busy', message: 'the upload listener is at capacity: retry, or upload over the socket' },
        { 'retry-after': '1' },
      );
    }
    // Unread until a slot frees: TCP's flow control holds the device back meanwhile.
    this.state = 'waiting';
    waiting.push((freed) => {
      if (this.state !== 'waiting') return releaseSlot(freed); // it went away meanwhile
      if (this.start(freed)) this.socket.resume();
    });
    return false;
  }

  /** With a slot: on to the meta (with what was read of the body already). */
  private start(slot: number): boolean {
    this.slot = slot;
    this.state = 'meta';
    return this.advance();
  }

  /** The meta is read: the delta's `bytes` go to the round's receive area or the slot's buffer, starting with those read already; false pauses reading. */
  private startDelta(bytes: number, already: Uint8Array): boolean {
    const { roundId } = this.job!;
    const slot = this.slot!;
    const offset = area && area.roundId === roundId && bytes <= area.bytesPerSlot ? area.offsets[slot] : undefined;
    this.into = offset === undefined ? null : area;
    this.target = this.into ? new Uint8Array(this.into.buffer, offset, bytes) : new Uint8Array(slotBuffer(slot, bytes), 0, bytes);
    if (already.byteLength > bytes) return this.fail(400, 'malformed', 'malformed', 'the body is longer than its Content-Length');
    copyToShared(already, this.target, 0);
    this.written = already.byteLength;
    this.early = Buffer.alloc(0); // read no further into it
    if (this.written === bytes) {
      this.received();
      return false;
    }
    this.state = 'delta';
    return true;
  }

  /** The whole body is in: the main thread's turn. */
  private received(): void {
    clearTimeout(this.timer);
    this.state = 'answering';
    const slot = this.slot!;
    const id = nextId++;
    const entry = slots[slot]!;
    const fresh = !this.into && entry.fresh; // the slot's own buffer, new to the main thread
    if (fresh) entry.fresh = false;
    pending.set(id, { connection: this, slot });
    this.slot = null; // now the answer's to release
    post({
      type: 'upload',
      id,
      clientId: this.job!.clientId,
      roundId: this.job!.roundId,
      meta: this.meta,
      slot,
      ...(this.into ? { area: this.into.roundId } : {}),
      ...(fresh ? { buffer: entry.buffer! } : {}),
      length: this.written,
      arrivedAt: performance.timeOrigin + performance.now(),
    });
  }

  /** The round engine's verdict. */
  verdict(result: UpdateResult): void {
    if (this.state === 'answering') this.answer(result.accepted ? 200 : 422, result);
  }

  /** Answers a refusal; true: reading goes on, dropping what the device still sends. */
  private refuse(status: number, refusal: IngressRefusal, reason: RejectionReason, message: string): true {
    post({ type: 'refused', reason: refusal });
    return this.answerAndDrain(status, { accepted: false, reason, message });
  }

  /** A refusal after the slot was taken: freed again. */
  private fail(status: number, refusal: IngressRefusal, reason: RejectionReason, message: string): true {
    this.releaseHeldSlot();
    return this.refuse(status, refusal, reason, message);
  }

  private answerAndDrain(status: number, body: unknown, headers: Record<string, string> = {}): true {
    this.answer(status, body, headers);
    return true;
  }

  /** Writes the response and closes the connection behind it; reads after this are dropped (drain). */
  private answer(status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.releaseHeldSlot();
    const text = body === null ? '' : JSON.stringify(body);
    const fields: Record<string, string> = {
      ...CORS_HEADERS,
      ...(body === null ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'close',
      ...headers,
    };
    let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\n`;
    for (const [name, value] of Object.entries(fields)) head += `${name}: ${value}\r\n`;
    this.socket.end(`${head}\r\n${text}`);
    // Reading on (dropping) lets a device still sending its body get to the answer; bounded in time too.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.socket.destroy(), HEAD_TIMEOUT_MS);
    this.socket.resume();
  }

  private releaseHeldSlot(): void {
    if (this.slot === null) return;
    releaseSlot(this.slot);
    this.slot = null;
  }

  /** The device finished sending: fine once the body is in (its verdict is still written), else it went away mid-body. */
  private onEnd(): void {
    if (this.state === 'answering') return;
    if (this.state === 'done') this.socket.destroy();
    else this.cut();
  }

  private onClose(): void {
    clearTimeout(this.timer);
    connections--;
    if (this.state !== 'done' && this.state !== 'answering') this.cut();
    this.state = 'done';
  }

  /** Gone before its body was in (or timed out): counted when the upload had been admitted. */
  private cut(): void {
    if (this.job && this.state !== 'done' && this.state !== 'answering') post({ type: 'refused', reason: 'incomplete' });
    if (this.state === 'waiting') this.state = 'done'; // the waiting line's callback sees it
    this.releaseHeldSlot();
    this.state = 'done';
    this.socket.destroy();
  }
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
  new UploadConnection(handle);
});
server.once('error', (error: NodeJS.ErrnoException) => post({ type: 'listenFailed', code: error.code, message: error.message }));
server.listen(settings.port, settings.host, () => {
  const address = server.address();
  post({ type: 'listening', port: typeof address === 'object' && address ? address.port : settings.port });
});
