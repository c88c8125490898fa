import { Injectable } from '@nestjs/common';
import { moduleLogger } from '../logging/logger.js';
import type { FlockEventName, FlockEvents, FlockListener } from './flock-events.js';

const log = moduleLogger('events');

/**
 * The coordinator's one in-process event bus: typed `on/off/emit` over FlockEvents. Emitting is
 * synchronous and never throws: a listener that throws (or whose promise rejects) is logged, and
 * the other listeners still run.
 */
@Injectable()
export class FlockEventBus {
  private readonly listeners = new Map<FlockEventName, Set<FlockListener<never>>>();

  on<E extends FlockEventName>(event: E, listener: FlockListener<E>): void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
  }

  off<E extends FlockEventName>(event: E, listener: FlockListener<E>): void {
    this.listeners.get(event)?.delete(listener);
  }

  emit<E extends FlockEventName>(event: E, payload: FlockEvents[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set] as FlockListener<E>[]) {
      try {
        const result = listener(payload);
        if (result instanceof Promise) result.catch((error: unknown) => log.error({ event, err: error }, 'an event listener failed'));
      } catch (error) {
        log.error({ event, err: error }, 'an event listener failed');
      }
    }
  }
}
