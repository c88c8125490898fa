import type { ConnectError } from '@flock/client-sdk/protocol';

/** A refused device session, with its stable reason code (socket.io sends `data` along with a `connect_error`). */
export class HandshakeError extends Error {
  readonly data: { code: ConnectError; detail: string; retryAfterMs?: number };
  constructor(
    readonly code: ConnectError,
    detail: string,
    /** For `coordinator_busy`: when the device should come back. */
    retryAfterMs?: number,
  ) {
    super(code);
    this.data = { code, detail, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  }
}
