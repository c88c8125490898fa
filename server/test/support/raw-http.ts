/** A raw HTTP/1.1 client over one socket, for tests that need to see the connection itself (keep-alive, pipelining, closes). */
import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits the bytes of HTTP/1.1 answers (an answer without Content-Length runs to the end of the bytes: the connection's close). */
export function parseAnswers(bytes: Buffer): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let rest = bytes;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = rest.toString('latin1', 0, end).split('\r\n');
    const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
    const status = Number(statusLine!.split(' ')[1]);
    const length = status < 200 ? 0 : headers['content-length'] === undefined ? rest.length - end - 4 : Number(headers['content-length']);
    if (rest.length < end + 4 + length) break;
    answers.push({ status, headers, body: rest.toString('utf8', end + 4, end + 4 + length) });
    rest = rest.subarray(end + 4 + length);
  }
  return answers;
}

/** Sends bytes, waits for N answers (or the close). */
export class RawClient {
  private bytes = Buffer.alloc(0);
  closed = false;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Connects to a listening server or to a URL's host and port. */
  static async open(target: Server | string): Promise<RawClient> {
    let port: number;
    if (typeof target === 'string') port = Number(new URL(target).port);
    else {
      const address = target.address();
      port = typeof address === 'object' && address ? address.port : 0;
    }
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    return new RawClient(socket);
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  async answers(count: number, timeoutMs = 3000): Promise<RawAnswer[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const answers = parseAnswers(this.bytes);
      if (answers.length >= count || this.closed || Date.now() > deadline) return answers;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
    }
  }

  async closes(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return this.closed;
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}
