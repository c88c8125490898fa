/**
 * The floor under the coordinator's upload path (bench/upload-cost.ts): a process that does nothing
 * but receive uploads and acknowledge them, over socket.io (the coordinator's own transport: the
 * same socket.io, ws and bufferutil, websocket only) or a plain HTTP PUT of the delta's bytes. Each
 * delta is copied once into a preallocated buffer (what the coordinator's intake does first). With
 * `--heap-mb N` the process first fills its heap with N MiB of small linked objects, so that the
 * garbage collector has as much to mark as in the coordinator. With `--in-worker` the server runs in
 * a worker thread (its own V8 heap, nearly empty) while those objects stay on the main thread: an
 * upload path kept apart from the heap the rest of the process holds. Prints "listening PORT".
 *
 *   node --import tsx bench/lib/transport-floor-server.ts --transport socketio|http [--heap-mb N] [--in-worker]
 */
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { ClientEvent } from '../../client-sdk/src/protocol/index.js';
import { startModuleWorker } from '../../server/src/worker-thread.js';

const { values: args } = parseArgs({
  options: {
    transport: { type: 'string', default: 'socketio' },
    'heap-mb': { type: 'string', default: '0' },
    'in-worker': { type: 'boolean', default: false },
  },
});

if (isMainThread) {
  /** Live objects for the collector to mark: records with a string and a link, as a service's heap holds. */
  const ballast: { id: number; name: string; next: unknown }[] = [];
  while (process.memoryUsage().heapUsed < Number(args['heap-mb']) * 2 ** 20) {
    for (let i = 0; i < 10_000; i++) ballast.push({ id: i, name: `record-${ballast.length}`, next: ballast[ballast.length - 1] });
  }
  (globalThis as { floorBallast?: unknown }).floorBallast = ballast;
}

/** Where every delta is copied: at least a 2NN upload. Only the copy is measured, so a larger upload simply gets a larger slot. */
let slot = Buffer.alloc(1 << 20);
function keep(data: Uint8Array, at = 0): void {
  if (at + data.byteLength > slot.length) slot = Buffer.alloc(2 * (at + data.byteLength));
  slot.set(data, at);
}

/** Receives uploads and acknowledges each: over socket.io as the coordinator runs it, or as a plain HTTP PUT. */
function serve(): void {
  const server = createServer();
  if (args.transport === 'http') {
    server.on('request', (request, response) => {
      let at = 0;
      request.on('data', (chunk: Buffer) => {
        keep(chunk, at);
        at += chunk.byteLength;
      });
      request.on('end', () => response.writeHead(200, { 'Content-Type': 'application/json' }).end('{"accepted":true}'));
    });
  } else {
    type Io = new (
      server: unknown,
      options: Record<string, unknown>,
    ) => {
      on(
        event: 'connection',
        listener: (socket: { on(event: string, listener: (upload: { delta: { data: Uint8Array } }, ack: (result: unknown) => void) => void): void }) => void,
      ): void;
    };
    const { Server } = createRequire(resolve(import.meta.dirname, '../../server/package.json'))('socket.io') as { Server: Io };
    const io = new Server(server, { transports: ['websocket'], maxHttpBufferSize: 4 * 2 ** 20 });
    io.on('connection', (socket) =>
      socket.on(ClientEvent.update, (upload, ack) => {
        keep(upload.delta.data);
        ack({ accepted: true });
      }),
    );
  }
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    console.log(`listening ${typeof address === 'object' && address ? address.port : 0}`);
  });
}

if (isMainThread && args['in-worker']) {
  // This file again, in a worker thread (no compiled .js here: through tsx): it serves, this thread only holds the heap.
  startModuleWorker(new URL(import.meta.url.replace(/\.ts$/, '.js')), { argv: process.argv.slice(2) }).once('error', (error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  serve();
}
