/**
 * A minimal typed event emitter for the SDK's public events. Hand-written rather than Node's
 * EventEmitter (the core must run in browsers and React Native) or socket.io's component-emitter
 * (it exposes a public `emit`): listeners may only subscribe, and a throwing listener is reported
 * to `onListenerError` instead of breaking the client's state machine.
 */
export type Listener<T> = (payload: T) => void;

/** `Events` maps event names to payload types (an interface works: no index signature needed). */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (error: unknown, event: keyof Events) => void = () => {}) {}

  /** Subscribes; returns a function that unsubscribes. */
  on<E extends keyof Events>(event: E, listener: Listener<Events[E]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** Subscribes for the next occurrence only. */
  once<E extends keyof Events>(event: E, listener: Listener<Events[E]>): () => void {
    const unsubscribe = this.on(event, (payload) => {
      unsubscribe();
      listener(payload);
    });
    return unsubscribe;
  }

  off<E extends keyof Events>(event: E, listener: Listener<Events[E]>): void {
    this.listeners.get(event)?.delete(listener);
  }

  /** Resolves with the next payload of `event` (handy in tests and scripts). */
  next<E extends keyof Events>(event: E, filter: (payload: Events[E]) => boolean = () => true): Promise<Events[E]> {
    return new Promise((resolve) => {
      const unsubscribe = this.on(event, (payload) => {
        if (!filter(payload)) return;
        unsubscribe();
        resolve(payload);
      });
    });
  }

  protected emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[E]>)(payload);
      } catch (error) {
        this.onListenerError(error, event);
      }
    }
  }
}
