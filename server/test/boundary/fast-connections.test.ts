/**
 * The keep-alive connections answered before node:http (boundary/fast-connections.ts), on a real
 * node:http server over real sockets. The server's own request listener answers `node`, the fast
 * route answers `fast`: every test can tell which one answered each request.
 */
import { createServer, type Server } from 'node:http';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { takeConnections, type FastRouter } from '../../src/boundary/fast-connections.js';
import { RawClient } from '../support/raw-http.js';

/** The route for /fast: answers `fast METHOD PATH BODY`, with an id of its connection. */
const fastRoute =
  (maxBodyBytes = 1024): FastRouter =>
  (head, connection) => ({
    maxBodyBytes,
    answer: async (body) => ({
      status: 200,
      headers: [
        'Content-Type',
        'text/plain',
        'X-Connection',
        String(connectionIds.get(connection) ?? connectionIds.set(connection, connectionIds.size + 1).size),
      ],
      body: `fast ${head.method} ${head.path} ${body.toString()}`,
    }),
  });
const connectionIds = new Map<object, number>();

const post = (path: string, body: string, extra = ''): string =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

let server: Server | null = null;
const clients: RawClient[] = [];

/** A node:http server answering `node METHOD URL BODY`, with the fast route on /fast. */
async function start(route: FastRouter = fastRoute(), configure: (s: Server) => void = () => undefined): Promise<Server> {
  const created = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    const text = () => `node ${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`;
    req.on('end', () => (req.url === '/slow' ? setTimeout(() => res.end(text()), 200) : res.end(text())));
  });
  configure(created);
  takeConnections(created, (head, connection) => (head.path === '/fast' ? route(head, connection) : null));
  await new Promise<void>((resolve) => created.listen(0, '127.0.0.1', resolve));
  server = created;
  return created;
}

async function client(): Promise<RawClient> {
  const opened = await RawClient.open(server!);
  clients.push(opened);
  return opened;
}

afterEach(async () => {
  for (const opened of clients.splice(0)) opened.socket.destroy();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = null;
});

describe('keep-alive connections answered before node:http', () => {
  it('answers several requests on one connection, in order, keeping it open', async () => {
    await start();
    const c = await client();
    for (let i = 0; i < 3; i++) {
      c.send(post('/fast', `n${i}`));
      const answers = await c.answers(i + 1);
      expect(answers[i]).toMatchObject({ status: 200, body: `fast POST /fast n${i}` });
      expect(answers[i]!.headers).toMatchObject({
        connection: 'keep-alive',
        'content-type': 'text/plain',
        'x-connection': answers[0]!.headers['x-connection'],
      });
      expect(answers[i]!.headers.date).toMatch(/GMT$/);
    }
    expect(c.closed).toBe(false);
  });

  it('answers pipelined requests one after another, and a request split across many writes', async () => {
    await start();
    const c = await client();
    c.send(post('/fast', 'a') + post('/fast', 'b') + post('/fast?q=1', 'c'));
    expect((await c.answers(3)).map((answer) => answer.body)).toEqual(['fast POST /fast a', 'fast POST /fast b', 'fast POST /fast c']);
    for (const byte of post('/fast', 'split')) c.send(byte);
    expect((await c.answers(4))[3]!.body).toBe('fast POST /fast split');
  });

  it('reads a large body sent in many small writes', async () => {
    await start(fastRoute(300_000));
    const c = await client();
    const body = 'abcdefgh'.repeat(32 * 1024);
    const request = Buffer.from(post('/fast', body));
    for (let at = 0; at < request.length; at += 1000) c.send(request.subarray(at, at + 1000));
    expect((await c.answers(1))[0]!.body).toBe(`fast POST /fast ${body}`);
  });

  it('hands the connection to node:http at the first request it does not take, for good, with its bytes', async () => {
    await start();
    const c = await client();
    c.send(post('/fast', 'one'));
    await c.answers(1);
    // Not the route: node:http answers it, and everything after it on this connection.
    c.send(post('/other', 'two') + post('/fast', 'three'));
    const answers = await c.answers(3);
    expect(answers.map((answer) => answer.body)).toEqual(['fast POST /fast one', 'node POST /other two', 'node POST /fast three']);
  });

  it('leaves to node:http what it does not speak: chunked, Expect, HTTP/1.0, Upgrade, odd Connection, a body past the bound, no length', async () => {
    await start(fastRoute(16));
    const cases = [
      'POST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'POST /fast HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
      post('/fast', 'abc', 'Upgrade: websocket\r\nConnection: upgrade\r\n'),
      post('/fast', 'abc', 'Connection: keep-alive, x-other\r\n'),
      post('/fast', 'x'.repeat(17)),
      'GET /fast HTTP/1.1\r\nHost: x\r\n\r\n',
    ];
    for (const request of cases) {
      const c = await client();
      c.send(request);
      const [answer] = await c.answers(1);
      expect(answer?.body, request).toMatch(/^node /);
    }
    const expecting = await client();
    expecting.send('POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expecting.send('abc');
    const answers = await expecting.answers(2);
    expect(answers.at(-1)?.body).toBe('node POST /fast abc');
  });

  it('lets node:http refuse heads this layer refuses to read', async () => {
    await start();
    for (const request of [
      'POST /fast HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nContent-Length: 0\r\n\r\n',
      `POST /fast HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
    ]) {
      const c = await client();
      c.send(request);
      const [answer] = await c.answers(1);
      expect(answer?.status).toBeGreaterThanOrEqual(400);
      expect(await c.closes()).toBe(true);
    }
  });

  it('closes after answering Connection: close, and after a half-closed request', async () => {
    await start();
    const c = await client();
    c.send(post('/fast', 'bye', 'Connection: close\r\n'));
    expect((await c.answers(1))[0]).toMatchObject({ body: 'fast POST /fast bye', headers: { connection: 'close' } });
    expect(await c.closes()).toBe(true);
    const half = await client();
    half.socket.end(post('/fast', 'half'));
    expect((await half.answers(1))[0]?.body).toBe('fast POST /fast half');
    expect(await half.closes()).toBe(true);
  });

  it("keeps the server's timeouts: idle keep-alive, a head that never ends, a body that never ends", async () => {
    await start(fastRoute(), (s) => {
      s.keepAliveTimeout = 200;
      s.headersTimeout = 300;
      s.requestTimeout = 400;
    });
    const idle = await client();
    idle.send(post('/fast', 'x'));
    await idle.answers(1);
    expect(await idle.closes(2000)).toBe(true);
    const slowHead = await client();
    slowHead.send('POST /fast HTTP/1.1\r\n');
    const dribble = setInterval(() => slowHead.send('X: y\r\n'), 50);
    expect(await slowHead.closes(2000)).toBe(true);
    clearInterval(dribble);
    const slowBody = await client();
    slowBody.send('POST /fast HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc');
    expect(await slowBody.closes(2000)).toBe(true);
  });

  it('lets server.close() finish while a connection idles between requests', async () => {
    const s = await start();
    const c = await client();
    c.send(post('/fast', 'x'));
    await c.answers(1);
    const started = Date.now();
    await new Promise((resolve) => s.close(resolve));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await c.closes()).toBe(true);
    server = null;
  });

  it('leaves the requests of a handed-over connection to node:http when the server closes', async () => {
    const s = await start();
    const c = await client();
    c.send(post('/slow', 'in flight'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = new Promise((resolve) => s.close(resolve));
    expect((await c.answers(1))[0]?.body).toBe('node POST /slow in flight');
    await closed;
    server = null;
  });

  it('drops the connection when the route fails, and serves the next one', async () => {
    await start(() => ({ maxBodyBytes: 64, answer: () => Promise.reject(new Error('route failed')) }));
    const c = await client();
    c.send(post('/fast', 'x'));
    expect(await c.closes()).toBe(true);
    const next = await client();
    next.send(post('/other', 'y'));
    expect((await next.answers(1))[0]?.body).toBe('node POST /other y');
  });

  it('survives any bytes: no throw, and the server answers the next connection', async () => {
    await start();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.boolean(), async (bytes, prefixed) => {
        const c = await client();
        c.send(prefixed ? Buffer.concat([Buffer.from('POST /fast HTTP/1.1\r\nContent-Length: 4\r\n'), bytes]) : Buffer.from(bytes));
        c.socket.end();
        await c.closes(1000);
      }),
      { numRuns: 40 },
    );
    const c = await client();
    c.send(post('/fast', 'still'));
    expect((await c.answers(1))[0]?.body).toBe('fast POST /fast still');
  });
});
