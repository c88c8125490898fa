import { io, type Socket } from 'socket.io-client';
import {
  DASHBOARD_NAMESPACE,
  DASHBOARD_STATE_EVENT,
  type DashboardClientToServerEvents,
  type DashboardServerToClientEvents,
  type DashboardState,
} from '../../src/dashboard/dashboard-state.js';

type OperatorSocket = Socket<DashboardServerToClientEvents, DashboardClientToServerEvents>;

/** An operator page's socket: records every pushed snapshot. */
export class OperatorFeed {
  readonly states: { at: number; state: DashboardState }[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: OperatorSocket) {
    socket.on(DASHBOARD_STATE_EVENT, (state) => {
      this.states.push({ at: Date.now(), state });
      this.waiters.splice(0).forEach((wake) => wake());
    });
  }

  static open(url: string, auth?: Record<string, unknown>): OperatorSocket {
    return io(`${url}${DASHBOARD_NAMESPACE}`, { ...(auth ? { auth } : {}), transports: ['websocket'], reconnection: false, forceNew: true });
  }

  static async connect(url: string, token: string): Promise<OperatorFeed> {
    const socket = OperatorFeed.open(url, { token });
    const feed = new OperatorFeed(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    return feed;
  }

  /** The first snapshot received at or after index `from` that satisfies the predicate. */
  async waitFor(predicate: (state: DashboardState) => boolean, what: string, from = 0, timeoutMs = 15_000): Promise<DashboardState> {
    const deadline = Date.now() + timeoutMs;
    for (let i = from; ;) {
      for (; i < this.states.length; i++) if (predicate(this.states[i]!.state)) return this.states[i]!.state;
      const left = deadline - Date.now();
      if (left <= 0) {
        const last = this.states.at(-1)?.state;
        throw new Error(`no pushed snapshot with ${what}; last: ${JSON.stringify(last?.clients)} round ${last?.activeRound?.status ?? 'none'}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.disconnect();
  }
}

/** Connects with the given handshake auth and resolves with the refusal (rejects if it connects). */
export function refusal(url: string, auth?: Record<string, unknown>): Promise<Error & { data?: { code?: string } }> {
  const socket = OperatorFeed.open(url, auth);
  let received = false;
  socket.on(DASHBOARD_STATE_EVENT, () => {
    received = true;
  });
  return new Promise((resolve, reject) => {
    socket.once('connect_error', (error) => {
      socket.disconnect();
      resolve(error);
    });
    socket.once('connect', () => {
      setTimeout(() => {
        socket.disconnect();
        reject(new Error(`connected without a valid operator token (snapshot received: ${received})`));
      }, 200);
    });
  });
}
