import type { UpdateResult } from '@flock/client-sdk/protocol';
import type { RoundReceiveArea } from './upload-endpoints.js';

/** What the upload listener's worker thread is started with (workerData). */
export interface IngressSettings {
  /** The upload tickets' HMAC key (upload-tickets.ts). */
  key: Uint8Array;
  host: string;
  port: number;
  /** The most weight bytes one upload may carry (FLOCK_MAX_UPLOAD_BYTES). */
  maxUploadBytes: number;
  /** Uploads received and not yet answered at a time, each in its own shared buffer; more wait unread. */
  slots: number;
  /** How long a request may take from its first byte to its last. */
  requestTimeoutMs: number;
}

/** Why the listener refused a request before the round engine saw it (counted: flock_upload_requests_total). */
export const INGRESS_REFUSALS = ['unauthorized', 'too_large', 'malformed', 'incomplete', 'busy', 'not_found'] as const;
export type IngressRefusal = (typeof INGRESS_REFUSALS)[number];

/** Worker thread -> main thread. */
export type IngressEvent =
  | { type: 'listening'; port: number }
  | { type: 'listenFailed'; code: string | undefined; message: string }
  | {
      type: 'upload';
      id: number;
      clientId: string;
      roundId: string;
      /** The body's meta: the upload message without its bytes, as JSON text (not parsed in the worker). */
      meta: string;
      slot: number;
      /**
       * Present when the delta's bytes were written into round `area`'s receive area, at the slot's
       * offset there (the main thread holds that area: UploadEndpoints.areaOf); else they are in the slot's own buffer.
       */
      area?: string;
      /** The slot's buffer, sent when the slot got a new one (the main thread keeps the last one it was sent). */
      buffer?: SharedArrayBuffer;
      /** The delta's bytes, from offset 0 of the slot's buffer (or from the slot's offset in the area). */
      length: number;
      /** Epoch milliseconds (performance.timeOrigin + performance.now()) when the body's last byte arrived. */
      arrivedAt: number;
    }
  | { type: 'refused'; reason: IngressRefusal };

/** Main thread -> worker thread: the round engine's answer to upload `id`; its slot is free again. */
export interface IngressAnswer {
  type: 'answer';
  id: number;
  result: UpdateResult;
}

/**
 * Main thread -> worker thread: from now on, uploads to `area.roundId` that fit `area.bytesPerSlot`
 * are written into the round's receive area (its aggregator's memory) at their slot's offset; null:
 * none (the round ended). The area replaces any earlier one.
 */
export interface IngressAreaMessage {
  type: 'area';
  area: RoundReceiveArea | null;
}

/** Main thread -> worker thread. */
export type IngressCommand = IngressAnswer | IngressAreaMessage;
