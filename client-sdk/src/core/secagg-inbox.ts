/**
 * The coordinator's secure-aggregation messages for this device (already schema-checked by the
 * connection), held until the secure round job asks for them: a message may arrive before the
 * job waits for it. One slot per kind; a newer round's message replaces an older one.
 */
import type { SecAggRelay, SecAggRoster, SecAggUnmask } from '../protocol/secagg-messages.js';
import { schedule } from './runtime.js';

export interface SecAggMessages {
  roster: SecAggRoster;
  relay: SecAggRelay;
  unmask: SecAggUnmask;
}
export type SecAggMessageKind = keyof SecAggMessages;

interface Waiter {
  roundId: string;
  resolve: (message: unknown) => void;
}

export class SecAggInbox {
  private readonly held = new Map<SecAggMessageKind, { roundId: string; message: unknown }>();
  private readonly waiters = new Map<SecAggMessageKind, Waiter>();

  deliver<K extends SecAggMessageKind>(kind: K, message: SecAggMessages[K]): void {
    const waiter = this.waiters.get(kind);
    if (waiter?.roundId === message.roundId) {
      this.waiters.delete(kind);
      waiter.resolve(message);
      return;
    }
    this.held.set(kind, { roundId: message.roundId, message });
  }

  /**
   * The message of `kind` for `roundId`: at once if it arrived, else when it does; null when
   * `timeoutMs` passes first or `stopped()` turns true (checked every 200 ms).
   */
  next<K extends SecAggMessageKind>(kind: K, roundId: string, timeoutMs: number, stopped: () => boolean): Promise<SecAggMessages[K] | null> {
    const held = this.held.get(kind);
    if (held?.roundId === roundId) {
      this.held.delete(kind);
      return Promise.resolve(held.message as SecAggMessages[K]);
    }
    return new Promise((resolve) => {
      const startedAt = Date.now();
      let cancelTick: (() => void) | null = null;
      const finish = (message: SecAggMessages[K] | null): void => {
        cancelTick?.();
        if (this.waiters.get(kind)?.resolve === onMessage) this.waiters.delete(kind);
        resolve(message);
      };
      const onMessage = (message: unknown): void => finish(message as SecAggMessages[K]);
      const tick = (): void => {
        if (stopped() || Date.now() - startedAt >= timeoutMs) finish(null);
        else cancelTick = schedule(tick, 200);
      };
      this.waiters.set(kind, { roundId, resolve: onMessage });
      cancelTick = schedule(tick, 200);
    });
  }
}
