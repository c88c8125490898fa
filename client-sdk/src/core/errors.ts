/** Errors the client reports through its `error` event (and throws from its methods). */
import type { ConnectError, RejectionReason } from '../protocol/reasons.js';

export type ClientErrorCode =
  | ConnectError // the coordinator refused the session: not retried (token_expired is, with a deviceToken function)
  | 'connection' // a transport-level connection failure (socket.io keeps retrying)
  | 'device_token_failed' // the app's deviceToken function threw or returned no token (retried later)
  | 'protocol' // the coordinator sent something that does not match the protocol
  | 'model_fetch_failed'
  | 'training_failed'
  | 'upload_failed' // no acknowledgement (timeout, disconnect)
  | 'upload_rejected'
  | 'evaluation_failed'
  | 'store_failed'
  | 'data_source_failed'
  | 'no_model' // predict() without any model
  | 'listener_failed'; // an event listener threw

export class FlockClientError extends Error {
  override readonly name = 'FlockClientError';

  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly details: { cause?: unknown; roundId?: string; modelVersion?: number; rejection?: RejectionReason } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
