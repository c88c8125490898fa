/**
 * One device's connection to the upload listener (ingress-worker.ts), as a small state machine:
 * its head and the body's meta are read into a buffer of its own (through a shared scratch), then
 * the delta's bytes are read by the socket straight into their target (net's `onread` pointed at a
 * view of it), then the round engine's verdict is written back and the connection closed. HTTP/1.1,
 * narrowly: a strict head (request-head.ts), one request per connection, `Connection: close`. What
 * it needs of the listener (tickets, slots, the round's receive area, the main thread) comes through
 * ConnectionHost.
 */
import { STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import { UPLOAD_META_LENGTH_BYTES, UPLOAD_PATH, uploadDeltaOffset, type RejectionReason, type UpdateResult } from '@flock/client-sdk/protocol';
import type { IngressRefusal } from './ingress-messages.js';
import { headEnd, isHeadProblem, MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from '../boundary/request-head.js';

/** An upload whose head the listener accepted: who sends it (from its ticket) and its Content-Length. */
export interface AdmittedUpload {
  clientId: string;
  roundId: string;
  declared: number;
}

/** A request the listener answers itself, before reading its body. */
export type Refusal = [status: number, refusal: IngressRefusal, reason: RejectionReason, message: string];

/** A body read whole, for the main thread. */
export interface ReceivedBody {
  clientId: string;
  roundId: string;
  /** The meta's JSON text (not parsed here). */
  meta: string;
  slot: number;
  /** The round whose receive area holds the delta's bytes, or null: the slot's own buffer. */
  area: string | null;
  length: number;
}

/** The listener's side of a connection. */
export interface ConnectionHost {
  readonly headTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** The upload a head asks to send, or why it is refused: path, ticket, then size. */
  admit(head: RequestHead): AdmittedUpload | Refusal;
  /** A free slot; or null, having queued `whenFree` for the next slot freed; or 'busy' when the waiting line is full. */
  claimSlot(whenFree: (slot: number) => void): number | null | 'busy';
  releaseSlot(slot: number): void;
  /** Where `bytes` of an upload to `roundId` held in `slot` go: its region of the round's receive area, or the slot's own buffer. */
  targetFor(slot: number, roundId: string, bytes: number): { target: Uint8Array; area: string | null };
  /** Hands a whole body to the main thread; its verdict comes back through `connection.verdict`. */
  deliver(connection: UploadConnection, body: ReceivedBody): void;
  /** Counts a refusal the listener made itself. */
  refused(reason: IngressRefusal): void;
  /** The connection closed. */
  closed(): void;
}

const SCRATCH_BYTES = 64 * 1024;
/** What a refused request's unread body may still send before the connection is cut. */
const DRAIN_BYTES = 1 << 20;
const CORS_HEADERS: Record<string, string> = {
  // The ticket is the credential (no cookies), so any origin may send it: browsers ask first (preflight).
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'PUT',
  'access-control-allow-headers': 'authorization, content-type',
  'access-control-max-age': '600',
};
/** Where every connection's head and meta bytes are read before being kept (reads are handled one at a time). */
const readScratch = Buffer.allocUnsafe(SCRATCH_BYTES);

/**
 * One device's connection: its head and the body's meta are read into `early` (through
 * readScratch), then the delta's bytes straight into their target, then the round engine's verdict
 * is written back and the connection closed.
 */
export class UploadConnection {
  private state: 'head' | 'waiting' | 'meta' | 'delta' | 'answering' | 'done' = 'head';
  private early = Buffer.allocUnsafe(1024);
  private earlyLength = 0;
  /** Where the body starts in `early`. */
  private bodyStart = 0;
  private job: AdmittedUpload | null = null;
  private slot: number | null = null;
  private target: Uint8Array | null = null;
  /** The round whose receive area `target` lies in, if it does. */
  private area: string | null = null;
  private meta = '';
  private written = 0;
  private drained = 0;
  private timer: NodeJS.Timeout;
  private readonly socket: Socket;

  constructor(
    handle: object,
    private readonly host: ConnectionHost,
  ) {
    this.socket = new Socket({
      handle,
      readable: true,
      writable: true,
      allowHalfOpen: true,
      onread: { buffer: () => this.nextBuffer(), callback: (bytes: number, buffer: Uint8Array) => this.onRead(bytes, buffer) },
    } as ConstructorParameters<typeof Socket>[0]);
    this.timer = setTimeout(() => this.socket.destroy(), this.host.headTimeoutMs);
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
    this.timer = setTimeout(() => this.socket.destroy(), this.host.requestTimeoutMs);
    const head = parseRequestHead(bytes);
    if (isHeadProblem(head)) return this.answerAndDrain(head.status, { error: 'bad_request', message: head.message });
    if (head.method === 'OPTIONS' && head.path === UPLOAD_PATH) return this.answerAndDrain(204, null);
    const admitted = this.host.admit(head);
    if (Array.isArray(admitted)) return this.refuse(...admitted);
    this.job = admitted;
    if (/^\s*100-continue\s*$/i.test(head.headers.get('expect') ?? '')) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    const slot = this.host.claimSlot((freed) => {
      if (this.state !== 'waiting') return this.host.releaseSlot(freed); // it went away meanwhile
      if (this.start(freed)) this.socket.resume();
    });
    if (slot === 'busy') {
      // No verdict: the device uploads over the socket instead (or retries).
      this.host.refused('busy');
      return this.answerAndDrain(
        503,
        { error: 'busy', message: 'the upload listener is at capacity: retry, or upload over the socket' },
        { 'retry-after': '1' },
      );
    }
    if (slot !== null) return this.start(slot);
    // Unread until a slot frees (claimSlot queued this connection): TCP's flow control holds the device back meanwhile.
    this.state = 'waiting';
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
    const { target, area } = this.host.targetFor(this.slot!, this.job!.roundId, bytes);
    this.target = target;
    this.area = area;
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

  /** The whole body is in: the main thread's turn (the host hands it over; the verdict comes back through verdict()). */
  private received(): void {
    clearTimeout(this.timer);
    this.state = 'answering';
    const slot = this.slot!;
    this.slot = null; // now the answer's to release
    this.host.deliver(this, { clientId: this.job!.clientId, roundId: this.job!.roundId, meta: this.meta, slot, area: this.area, length: this.written });
  }

  /** The round engine's verdict. */
  verdict(result: UpdateResult): void {
    if (this.state === 'answering') this.answer(result.accepted ? 200 : 422, result);
  }

  /** Answers a refusal; true: reading goes on, dropping what the device still sends. */
  private refuse(status: number, refusal: IngressRefusal, reason: RejectionReason, message: string): true {
    this.host.refused(refusal);
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
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
    for (const [name, value] of Object.entries(fields)) head += `${name}: ${value}\r\n`;
    this.socket.end(`${head}\r\n${text}`);
    // Reading on (dropping) lets a device still sending its body get to the answer; bounded in time too.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.socket.destroy(), this.host.headTimeoutMs);
    this.socket.resume();
  }

  private releaseHeldSlot(): void {
    if (this.slot === null) return;
    this.host.releaseSlot(this.slot);
    this.slot = null;
  }

  /** The device finished sending: fine once the body is in (its verdict is still written), else it went away mid-body. */
  private onEnd(): void {
    if (this.state !== 'answering') this.cut();
  }

  private onClose(): void {
    clearTimeout(this.timer);
    this.host.closed();
    this.cut();
  }

  /** The connection ends: counted as incomplete when an admitted upload's body was not all in (gone, or timed out). */
  private cut(): void {
    if (this.job && this.state !== 'done' && this.state !== 'answering') this.host.refused('incomplete');
    this.releaseHeldSlot();
    this.state = 'done'; // a callback still in the waiting line sees it and passes the slot on
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
