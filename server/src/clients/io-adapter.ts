import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { Server, ServerOptions } from 'socket.io';
import type { FlockConfig } from '../config/config.js';

/** Socket bytes allowed beyond the weight data itself (JSON fields, framing). */
const SOCKET_OVERHEAD_BYTES = 1024 * 1024;

/**
 * socket.io server options from the coordinator's config. The transport limit sits above the
 * upload limit so that oversized uploads reach the validator and get a clear `payload_too_large`
 * instead of a dropped connection; only payloads past twice the limit are cut by socket.io.
 */
export class FlockIoAdapter extends IoAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly config: FlockConfig,
  ) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    return super.createIOServer(port, {
      ...(options as ServerOptions),
      maxHttpBufferSize: this.config.maxUploadBytes * 2 + SOCKET_OVERHEAD_BYTES,
      // socket.io's heartbeat detects dead clients: a device that misses it for 25 + 20 s is dropped.
      pingInterval: 25_000,
      pingTimeout: 20_000,
      cors: { origin: true, credentials: false },
    });
  }
}
