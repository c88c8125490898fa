/**
 * Per-socket rate limits on incoming socket.io events (pure: the clock is injected). Each socket
 * gets one token bucket per event class; an event that finds its bucket empty is dropped before any
 * parsing or handler work. Drops themselves spend a second bucket, the abuse budget: a socket that
 * keeps sending past its limits empties it and is disconnected. Everything is O(1) per event.
 */
import { ClientEvent } from '@flock/client-sdk/protocol';

/** A token bucket: `burst` events at once, refilled at `perSecond`. */
export interface RateRule {
  perSecond: number;
  burst: number;
}

/** The device events, by the class whose bucket they spend. Bounded, so usable as a metrics label. */
export const EVENT_CLASSES = ['proof', 'conditions', 'fetch', 'update', 'evaluation', 'abandon', 'secagg'] as const;
export type EventClass = (typeof EVENT_CLASSES)[number];

const CLASS_OF_EVENT: ReadonlyMap<string, EventClass> = new Map<string, EventClass>([
  [ClientEvent.proof, 'proof'],
  [ClientEvent.conditions, 'conditions'],
  [ClientEvent.fetchModel, 'fetch'],
  [ClientEvent.update, 'update'],
  [ClientEvent.evaluation, 'evaluation'],
  [ClientEvent.abandon, 'abandon'],
  [ClientEvent.secAggAdvertise, 'secagg'],
  [ClientEvent.secAggShares, 'secagg'],
  [ClientEvent.secAggMasked, 'secagg'],
  [ClientEvent.secAggReveal, 'secagg'],
]);

export interface EventLimits {
  /** Buckets of the device namespace's events. Events of no class (unknown names) are always dropped. */
  rules: Record<EventClass, RateRule>;
  /** Drops a socket may accumulate (burst) and have forgiven per second before it is disconnected. */
  abuse: RateRule;
}

/**
 * Defaults far above what the SDK sends: it reports conditions only when they change, fetches a
 * model when configured or when a new version is published, uploads and evaluates once per round
 * or version, and proves its key once per connection. Bursts are generous (a flapping idle
 * detector, a device catching up on versions): what the limits are for is floods of thousands.
 * Uploads are checked in O(model size) each; their bytes are bounded by FLOCK_MAX_UPLOAD_BYTES.
 */
export const DEFAULT_EVENT_LIMITS: EventLimits = {
  rules: {
    proof: { perSecond: 1, burst: 2 },
    conditions: { perSecond: 5, burst: 50 },
    fetch: { perSecond: 2, burst: 20 },
    update: { perSecond: 1, burst: 10 },
    evaluation: { perSecond: 2, burst: 50 },
    abandon: { perSecond: 2, burst: 20 },
    // A secure round sends four messages per round (advertise, shares, masked input, reveal).
    secagg: { perSecond: 2, burst: 20 },
  },
  abuse: { perSecond: 10, burst: 200 },
};

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly rule: RateRule,
    now: number,
  ) {
    this.tokens = rule.burst;
    this.updatedAt = now;
  }

  /** Takes one token if there is one; `now` in milliseconds. */
  take(now: number): boolean {
    const elapsed = Math.max(0, now - this.updatedAt);
    this.tokens = Math.min(this.rule.burst, this.tokens + (elapsed * this.rule.perSecond) / 1000);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export type DropReason = 'rate_limited' | 'unknown_event';
export type Verdict = { pass: true } | { pass: false; eventClass: EventClass | 'unknown'; reason: DropReason; abusive: boolean };

const PASS: Verdict = { pass: true };

/** One socket's buckets, made lazily (a device uses a few classes). */
export class SocketEventLimiter {
  private readonly buckets = new Map<EventClass, TokenBucket>();
  private readonly dropBudget: TokenBucket;
  private abusive = false;

  constructor(
    private readonly limits: EventLimits,
    private readonly clock: () => number = Date.now,
  ) {
    this.dropBudget = new TokenBucket(limits.abuse, clock());
  }

  /** Whether the event may go on; a drop says why and whether the socket has now exhausted its abuse budget (said once). */
  check(event: unknown): Verdict {
    const now = this.clock();
    const eventClass = typeof event === 'string' ? CLASS_OF_EVENT.get(event) : undefined;
    if (eventClass === undefined) return this.drop(now, 'unknown', 'unknown_event');
    let bucket = this.buckets.get(eventClass);
    if (!bucket) {
      bucket = new TokenBucket(this.limits.rules[eventClass], now);
      this.buckets.set(eventClass, bucket);
    }
    return bucket.take(now) ? PASS : this.drop(now, eventClass, 'rate_limited');
  }

  private drop(now: number, eventClass: EventClass | 'unknown', reason: DropReason): Verdict {
    const overBudget = !this.dropBudget.take(now) && !this.abusive;
    if (overBudget) this.abusive = true;
    return { pass: false, eventClass, reason, abusive: overBudget };
  }
}

/**
 * Reads `FLOCK_EVENT_RATE_LIMITS` (`off`, or overrides of the defaults: `conditions=2/20,update=0.5/5`,
 * i.e. class=perSecond/burst) and `FLOCK_EVENT_ABUSE_LIMIT` (`10/200`: drops forgiven per second /
 * drops allowed at once). Null: no limits.
 */
export function eventLimitsFromEnv(limits: string | undefined, abuse: string | undefined): EventLimits | null {
  if (limits?.trim() === 'off') return null;
  const rules = { ...DEFAULT_EVENT_LIMITS.rules };
  for (const entry of (limits ?? '').split(',').filter((part) => part.trim() !== '')) {
    const [name, rule] = entry.split('=').map((part) => part.trim());
    if (!(EVENT_CLASSES as readonly string[]).includes(name ?? ''))
      throw new Error(`FLOCK_EVENT_RATE_LIMITS: unknown event class "${name}" (one of ${EVENT_CLASSES.join(', ')})`);
    rules[name as EventClass] = parseRule('FLOCK_EVENT_RATE_LIMITS', rule ?? '');
  }
  const abuseRule = abuse === undefined || abuse.trim() === '' ? DEFAULT_EVENT_LIMITS.abuse : parseRule('FLOCK_EVENT_ABUSE_LIMIT', abuse);
  return { rules, abuse: abuseRule };
}

function parseRule(variable: string, text: string): RateRule {
  const match = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(text.trim());
  const perSecond = Number(match?.[1]);
  const burst = Number(match?.[2]);
  if (!match || !(perSecond > 0) || !(burst >= 1)) throw new Error(`${variable}: expected perSecond/burst such as 2/20, got "${text}"`);
  return { perSecond, burst };
}

/** The part of a socket.io socket the guard needs (both namespaces' sockets fit). */
interface GuardedSocket {
  use(middleware: (packet: unknown[], next: (error?: Error) => void) => void): unknown;
  disconnect(close?: boolean): unknown;
}

/**
 * Puts the limiter in front of everything a socket sends (socket.io runs `socket.use` middleware
 * before any listener): dropped events go nowhere, and a socket past its abuse budget is closed.
 */
export function limitSocketEvents(socket: GuardedSocket, limiter: SocketEventLimiter, onDrop: (verdict: Extract<Verdict, { pass: false }>) => void): void {
  socket.use((packet, next) => {
    const verdict = limiter.check(packet[0]);
    if (verdict.pass) return next();
    onDrop(verdict);
    if (verdict.abusive) socket.disconnect(true);
  });
}
