import type { ConnectError } from '@flock/client-sdk/protocol';

/** A refused device session, with its stable reason code (socket.io sends `data` along with a `connect_error`). */
export class HandshakeError extends Error {
  readonly data: { code: ConnectError; detail: string };
  constructor(
    readonly code: ConnectError,
    detail: string,
  ) {
    super(code);
    this.data = { code, detail };
  }
}
