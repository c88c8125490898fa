import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { UploadEndpoint } from '@flock/client-sdk/protocol';
import { UploadTickets } from './upload-tickets.js';

/**
 * Where devices upload over HTTP, as each round's plan tells them: set once the upload listener is
 * up (upload-ingress.service.ts); until then, and when it is off, plans name no endpoint and devices
 * upload over socket.io. The ticket key is made per process and never leaves it.
 */
@Injectable()
export class UploadEndpoints {
  readonly key = randomBytes(32);
  private readonly tickets = new UploadTickets(this.key);
  private where: { port: number } | { url: string } | null = null;
  private minBytes = 0;

  /** The listener is up at `port`, reached by devices at `publicUrl` when the operator published one, for models of `minBytes` and more. */
  listening(port: number, publicUrl: string | null, minBytes: number): void {
    this.where = publicUrl ? { url: publicUrl } : { port };
    this.minBytes = minBytes;
  }

  closed(): void {
    this.where = null;
  }

  /** Whether a round whose model has `modelBytes` of float32 weights takes uploads over HTTP (the listener is up, the model large enough). */
  takes(modelBytes: number): boolean {
    return this.where !== null && modelBytes >= this.minBytes;
  }

  /** The endpoint and ticket for `clientId`'s upload to `roundId`, valid until `expiresAt`; undefined while there is no listener. */
  endpointFor(clientId: string, roundId: string, expiresAt: number): UploadEndpoint | undefined {
    if (!this.where) return undefined;
    return { ticket: this.tickets.issue({ clientId, roundId, expiresAt }), ...this.where };
  }
}
