/**
 * Keep-alive connections answered before node:http sees them. node:http spends about 30 µs per
 * request on its parser, IncomingMessage and ServerResponse streams and header checks: more than
 * the rest of an inference request, and a third of the event loop's time under load
 * (bench/results/serving.md). So every new connection of the server is read here first.
 *
 * A request in the plain form this layer speaks (HTTP/1.1, a strict head by request-head.ts, a
 * Content-Length within the route's bound, no Transfer-Encoding, Expect or Upgrade, Connection
 * absent, keep-alive or close) that a route takes is answered here, and the connection stays here
 * for the next one. The first request that is not hands the connection to node:http for good,
 * with every byte not yet answered: node:http then answers it, and everything after it, exactly as
 * it did before this layer existed (errors, 413, chunked bodies, upgrades, other routes).
 *
 * One request per connection at a time: a pipelined request waits, read, until the one before it
 * is answered. Timeouts follow the server's own settings: keepAliveTimeout between requests,
 * headersTimeout for a request's head and requestTimeout for all of it. server.close() ends the
 * idle connections, and the busy ones after their answer, as node:http does with its own.
 */
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { contentLength, headEnd, isHeadProblem, MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from './request-head.js';

export interface FastAnswer {
  status: number;
  /** Flat [name, value, ...], without Content-Length, Date and Connection (written here). */
  headers: readonly string[];
  body: Buffer | string;
}

/** How one request is answered, once its router took it. */
export interface FastRoute {
  /** The most body bytes it takes: a larger Content-Length goes to node:http. */
  maxBodyBytes: number;
  /** Answers the request with its body. A rejection closes the connection without an answer. */
  answer(body: Buffer): Promise<FastAnswer>;
}

/**
 * The route of a request, or null to hand its connection to node:http. Called with the head alone,
 * before any of the body is kept: a request to refuse (a missing credential, say) goes to
 * node:http, which refuses it without reading its body into memory. `connection` is the same
 * object for every request of a connection (for per-connection caches).
 */
export type FastRouter = (head: RequestHead, connection: object) => FastRoute | null;

/** Unanswered bytes a busy connection may hold before it stops reading (pipelining past this waits). */
const MAX_WAITING_BYTES = 1024 * 1024;

type ConnectionListener = (socket: Socket) => void;

/** Reads every new connection of `server` first (see above); call before the server listens. */
export function takeConnections(server: Server, router: FastRouter): void {
  const nodeListeners = server.listeners('connection') as ConnectionListener[];
  server.removeAllListeners('connection');
  /** The connections this layer reads (a handed-over one is node:http's, and leaves the set). */
  const open = new Set<FastConnection>();
  let closing = false;
  server.on('connection', (socket: Socket) => {
    const handOver = (): void => {
      open.delete(connection);
      for (const listener of nodeListeners) listener.call(server, socket);
    };
    const connection = new FastConnection(socket, server, router, handOver, () => closing);
    open.add(connection);
    socket.once('close', () => open.delete(connection));
  });
  // node:http ends its idle keep-alive connections when the server closes: these too.
  const close = server.close.bind(server);
  server.close = (callback?: (error?: Error) => void): Server => {
    closing = true;
    for (const connection of open) connection.endIfIdle();
    return close(callback);
  };
}

/** The request being read: its head is parsed, its body not complete yet. */
interface Reading {
  /** It asked for `Connection: close`. */
  close: boolean;
  route: FastRoute;
  /** Where its body starts and ends in the buffered bytes. */
  bodyStart: number;
  end: number;
}

class FastConnection {
  /** Bytes read and not yet answered (or handed over), joined only when a head or a whole request is needed. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private reading: Reading | null = null;
  private busy = false;
  private ended = false;
  /** When the request now being read began (its first byte), for headersTimeout and requestTimeout. */
  private requestStarted = 0;
  private readonly onData = (chunk: Buffer): void => this.read(chunk);
  private readonly onEnd = (): void => {
    this.ended = true;
    if (!this.busy) this.socket.destroy();
  };
  private readonly onTimeout = (): void => {
    this.socket.destroy();
  };
  private readonly onError = (): void => {
    this.socket.destroy();
  };

  constructor(
    private readonly socket: Socket,
    private readonly server: Server,
    private readonly router: FastRouter,
    private readonly handOverTo: () => void,
    private readonly closing: () => boolean,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('timeout', this.onTimeout);
    socket.on('error', this.onError);
    socket.setNoDelay(true);
    this.waitFor(server.keepAliveTimeout);
  }

  endIfIdle(): void {
    if (!this.busy && this.buffered === 0) this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    if (this.buffered === 0) this.requestStarted = performance.now();
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (!this.busy) this.next();
    else if (this.buffered > MAX_WAITING_BYTES) this.socket.pause();
  }

  /** The buffered bytes as one Buffer (copied once when they came in several reads). */
  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Answers the next complete request, waits for the rest of it, or hands the connection over. */
  private next(): void {
    if (this.buffered === 0) return this.waitFor(this.server.keepAliveTimeout);
    if (this.reading === null) {
      // Only while the head is incomplete are reads joined one by one: at most MAX_HEAD_BYTES of them.
      const bytes = this.joined();
      const end = headEnd(bytes, bytes.length);
      if (end < 0) return bytes.length > MAX_HEAD_BYTES ? this.handOver() : this.waitUntil(this.server.headersTimeout);
      const head = parseRequestHead(bytes.subarray(0, end));
      if (isHeadProblem(head) || !isPlain(head)) return this.handOver();
      const length = contentLength(head);
      if (length === null) return this.handOver();
      const route = this.router(head, this.socket);
      if (route === null || length > route.maxBodyBytes) return this.handOver();
      this.reading = { close: head.headers.get('connection')?.toLowerCase() === 'close', route, bodyStart: end, end: end + length };
    }
    const { close, route, bodyStart, end } = this.reading;
    if (this.buffered < end) return this.waitUntil(this.server.requestTimeout);
    const bytes = this.joined();
    const body = bytes.subarray(bodyStart, end);
    this.chunks = bytes.length > end ? [bytes.subarray(end)] : [];
    this.buffered = bytes.length - end;
    this.reading = null;
    this.requestStarted = performance.now();
    this.busy = true;
    this.socket.setTimeout(0);
    route.answer(body).then(
      (answer) => this.answered(answer, close),
      () => this.socket.destroy(),
    );
  }

  private answered(answer: FastAnswer, close: boolean): void {
    this.busy = false;
    if (this.socket.destroyed) return;
    const last = close || this.ended || this.closing();
    writeAnswer(this.socket, answer, last ? null : this.server.keepAliveTimeout);
    if (last) {
      this.socket.end();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    this.next();
  }

  /** Waits for more bytes, at most `ms` of silence (0: no limit). */
  private waitFor(ms: number): void {
    this.socket.setTimeout(ms);
  }

  /** Waits for the rest of a request that must be complete `ms` after its first byte (0: no limit). */
  private waitUntil(ms: number): void {
    if (ms === 0) return this.waitFor(0);
    const left = this.requestStarted + ms - performance.now();
    if (left <= 0) this.socket.destroy();
    else this.waitFor(Math.ceil(left));
  }

  /** Gives the connection, with its unanswered bytes, to node:http. */
  private handOver(): void {
    const socket = this.socket;
    socket.removeListener('data', this.onData);
    socket.removeListener('end', this.onEnd);
    socket.removeListener('timeout', this.onTimeout);
    socket.removeListener('error', this.onError);
    socket.setTimeout(0);
    if (this.buffered > 0) socket.unshift(this.joined());
    this.chunks = [];
    this.buffered = 0;
    // node:http's listener reads what was unshifted first (the stream flows again on the next tick).
    this.handOverTo();
    if (socket.isPaused()) socket.resume();
  }
}

/** The plain form answered here (with a Content-Length, contentLength): HTTP/1.1, nothing that changes how the body or the connection is read. */
function isPlain(head: RequestHead): boolean {
  const { headers } = head;
  if (head.version !== '1.1' || headers.has('transfer-encoding') || headers.has('expect') || headers.has('upgrade')) return false;
  const connection = headers.get('connection')?.toLowerCase();
  return connection === undefined || connection === 'keep-alive' || connection === 'close';
}

/** Head and body in one write (one syscall): `keepAliveMs` null closes the connection after it. */
function writeAnswer(socket: Socket, answer: FastAnswer, keepAliveMs: number | null): void {
  const { status, headers, body } = answer;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  head += `Date: ${httpDate()}\r\nContent-Length: ${length}\r\n`;
  head += keepAliveMs === null ? 'Connection: close\r\n\r\n' : `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(keepAliveMs / 1000)}\r\n\r\n`;
  if (typeof body === 'string') {
    socket.write(head + body);
    return;
  }
  socket.cork();
  socket.write(head, 'latin1');
  socket.write(body);
  socket.uncork();
}

/** The Date header's value, made at most once a second (as node:http does). */
let dateText = '';
let dateSecond = -1;
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}
