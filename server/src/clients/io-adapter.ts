import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import type { Server, ServerOptions } from 'socket.io';
import { SOCKET_HTTP_HEADERS } from '../boundary/web-hygiene.js';
import type { FlockConfig } from '../config/config.js';

/** Socket bytes allowed beyond the weight data itself (JSON fields, framing). */
const SOCKET_OVERHEAD_BYTES = 1024 * 1024;

type AdapterFactory = ReturnType<typeof createAdapter>;

/** A connected socket.io Redis adapter and the way to close its connections. */
export interface RedisFanOut {
  adapter: AdapterFactory;
  close(): Promise<void>;
}

/**
 * Connects the socket.io Redis adapter (pub/sub), so that emits to a client's room and broadcasts
 * reach sockets held by any coordinator process behind a load balancer.
 */
export async function connectRedisFanOut(url: string, prefix: string): Promise<RedisFanOut> {
  const publisher = createClient({ url });
  const subscriber = publisher.duplicate();
  await Promise.all([publisher.connect(), subscriber.connect()]);
  return {
    // Under the cluster's key prefix, so that separate clusters (or test runs) on one Redis don't hear each other.
    adapter: createAdapter(publisher, subscriber, { key: `${prefix}socket.io` }),
    close: async () => {
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
    },
  };
}

/**
 * socket.io server options from the coordinator's config. The transport limit sits above the
 * upload limit so that oversized uploads reach the validator and get a clear `payload_too_large`
 * instead of a dropped connection; only payloads past twice the limit are cut by socket.io.
 */
export class FlockIoAdapter extends IoAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly config: FlockConfig,
    private readonly redis: RedisFanOut | null,
  ) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const server: Server = super.createIOServer(port, {
      ...(options as ServerOptions),
      maxHttpBufferSize: this.config.maxUploadBytes * 2 + SOCKET_OVERHEAD_BYTES,
      // socket.io's heartbeat detects dead clients: a device that misses it for 25 + 20 s is dropped.
      pingInterval: 25_000,
      pingTimeout: 20_000,
      cors: { origin: true, credentials: false },
    });
    if (this.redis) server.adapter(this.redis.adapter);
    // engine.io answers long-polling requests itself, before express and helmet see them.
    server.engine.on('headers', (headers: Record<string, string>) => Object.assign(headers, SOCKET_HTTP_HEADERS));
    return server;
  }
}
