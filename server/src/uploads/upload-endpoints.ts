import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { UploadEndpoint } from '@flock/client-sdk/protocol';
import type { ReceiveArea } from '../aggregation/kernels/float64-accumulator.js';
import { UploadTickets } from './upload-tickets.js';

/** A round's receive area (RoundAggregator.receiveArea): where the upload listener writes that round's uploads. */
export interface RoundReceiveArea extends ReceiveArea {
  readonly roundId: string;
}

/** The upload listener's side of receive areas (upload-ingress.service.ts). */
export interface AreaReceiver {
  /** Its upload slots: a round's area needs one region per slot. */
  readonly slots: number;
  /** From now on the listener writes `area.roundId`'s uploads into `area` (null: into its own buffers). */
  place(area: RoundReceiveArea | null): void;
}

/**
 * Where devices upload over HTTP, as each round's plan tells them: set once the upload listener is
 * up (upload-ingress.service.ts); until then, and when it is off, plans name no endpoint and devices
 * upload over socket.io. The ticket key is made per process and never leaves it.
 *
 * Also the seam through which the round engine hands the listener a round's receive area (its
 * aggregator's memory, where uploads are folded in place) without knowing the listener.
 */
@Injectable()
export class UploadEndpoints {
  readonly key = randomBytes(32);
  private readonly tickets = new UploadTickets(this.key);
  private where: { port: number } | { url: string } | null = null;
  private minBytes = 0;
  private receiver: AreaReceiver | null = null;
  private area: RoundReceiveArea | null = null;

  /**
   * The listener is up at `port`, reached by devices at `publicUrl` when the operator published one,
   * for models of `minBytes` and more; `receiver` takes rounds' receive areas.
   */
  listening(port: number, publicUrl: string | null, minBytes: number, receiver: AreaReceiver | null = null): void {
    this.where = publicUrl ? { url: publicUrl } : { port };
    this.minBytes = minBytes;
    this.receiver = receiver;
    if (this.area) receiver?.place(this.area);
  }

  closed(): void {
    this.where = null;
    this.receiver = null;
  }

  /** Whether a round whose model has `modelBytes` of float32 weights takes uploads over HTTP (the listener is up, the model large enough). */
  takes(modelBytes: number): boolean {
    return this.where !== null && modelBytes >= this.minBytes;
  }

  /** The slots of a receive area for a round whose model has `modelBytes` of float32 weights; 0 when its uploads do not go to the listener. */
  areaSlotsFor(modelBytes: number): number {
    return this.receiver && this.takes(modelBytes) ? this.receiver.slots : 0;
  }

  /** Round `roundId`'s HTTP uploads are written into `area` until closeArea (one round at a time: it replaces any other). */
  openArea(roundId: string, area: ReceiveArea): void {
    this.area = { buffer: area.buffer, offsets: area.offsets, bytesPerSlot: area.bytesPerSlot, roundId };
    this.receiver?.place(this.area);
  }

  /** The round ended: its area is no longer written into (nor read: areaOf answers null). */
  closeArea(roundId: string): void {
    if (this.area?.roundId !== roundId) return;
    this.area = null;
    this.receiver?.place(null);
  }

  /** `roundId`'s open receive area (the listener wrote an upload of it there), or null once the round has ended. */
  areaOf(roundId: string): RoundReceiveArea | null {
    return this.area?.roundId === roundId ? this.area : null;
  }

  /** The endpoint and ticket for `clientId`'s upload to `roundId`, valid until `expiresAt`; undefined while there is no listener. */
  endpointFor(clientId: string, roundId: string, expiresAt: number): UploadEndpoint | undefined {
    if (!this.where) return undefined;
    return { ticket: this.tickets.issue({ clientId, roundId, expiresAt }), ...this.where };
  }
}
