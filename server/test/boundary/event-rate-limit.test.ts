import { describe, expect, it } from 'vitest';
import { ClientEvent } from '@flock/client-sdk/protocol';
import { DEFAULT_EVENT_LIMITS, eventLimitsFromEnv, SocketEventLimiter, TokenBucket, type EventLimits } from '../../src/boundary/event-rate-limit.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

const LIMITS: EventLimits = {
  rules: { ...DEFAULT_EVENT_LIMITS.rules, conditions: { perSecond: 2, burst: 3 } },
  abuse: { perSecond: 1, burst: 5 },
};

describe('TokenBucket', () => {
  it('allows a burst, then refills at its rate and never above the burst', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ perSecond: 2, burst: 3 }, clock.now());
    expect([1, 2, 3, 4].map(() => bucket.take(clock.now()))).toEqual([true, true, true, false]);
    clock.advance(499);
    expect(bucket.take(clock.now())).toBe(false);
    clock.advance(1);
    expect(bucket.take(clock.now())).toBe(true);
    clock.advance(60_000);
    expect([1, 2, 3, 4].map(() => bucket.take(clock.now()))).toEqual([true, true, true, false]);
  });

  it('ignores a clock that goes backwards', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ perSecond: 1, burst: 1 }, clock.now());
    expect(bucket.take(clock.now())).toBe(true);
    clock.advance(-10_000);
    expect(bucket.take(clock.now())).toBe(false);
  });
});

describe('SocketEventLimiter', () => {
  it('limits each event class on its own bucket', () => {
    const clock = manualClock();
    const limiter = new SocketEventLimiter(LIMITS, clock.now);
    const conditions = [1, 2, 3, 4].map(() => limiter.check(ClientEvent.conditions).pass);
    expect(conditions).toEqual([true, true, true, false]);
    expect(limiter.check(ClientEvent.fetchModel).pass).toBe(true);
    expect(limiter.check(ClientEvent.conditions)).toEqual({ pass: false, eventClass: 'conditions', reason: 'rate_limited', abusive: false });
  });

  it('drops events of unknown names, whatever their type', () => {
    const limiter = new SocketEventLimiter(LIMITS, manualClock().now);
    for (const name of ['nope', '__proto__', 'constructor', 42, null, { toString: 'x' }]) {
      expect(limiter.check(name)).toMatchObject({ pass: false, eventClass: 'unknown', reason: 'unknown_event' });
    }
  });

  it('calls a socket abusive once, when its drops exhaust the abuse budget', () => {
    const clock = manualClock();
    const limiter = new SocketEventLimiter(LIMITS, clock.now);
    const verdicts = Array.from({ length: 20 }, () => limiter.check(ClientEvent.conditions));
    const abusive = verdicts.flatMap((verdict, i) => (!verdict.pass && verdict.abusive ? [i] : []));
    // 3 pass, 5 drops spend the budget, the 6th drop is the one that tips it; said once only.
    expect(abusive).toEqual([3 + 5]);
  });

  it('forgives occasional drops: the budget refills', () => {
    const clock = manualClock();
    const limiter = new SocketEventLimiter(LIMITS, clock.now);
    for (let second = 0; second < 100; second++) {
      // 3 events a second against a rate of 2: one drop a second, forgiven at 1 a second.
      for (let i = 0; i < 3; i++) expect(limiter.check(ClientEvent.conditions)).not.toMatchObject({ abusive: true });
      clock.advance(1000);
    }
  });
});

describe('eventLimitsFromEnv', () => {
  it('defaults, overrides per class, and off', () => {
    expect(eventLimitsFromEnv(undefined, undefined)).toEqual(DEFAULT_EVENT_LIMITS);
    const custom = eventLimitsFromEnv('conditions=0.5/4, update=1/2', '3/50');
    expect(custom?.rules.conditions).toEqual({ perSecond: 0.5, burst: 4 });
    expect(custom?.rules.update).toEqual({ perSecond: 1, burst: 2 });
    expect(custom?.rules.fetch).toEqual(DEFAULT_EVENT_LIMITS.rules.fetch);
    expect(custom?.abuse).toEqual({ perSecond: 3, burst: 50 });
    expect(eventLimitsFromEnv('off', undefined)).toBeNull();
  });

  it('refuses what it cannot read', () => {
    expect(() => eventLimitsFromEnv('telemetry=1/2', undefined)).toThrow(/unknown event class/);
    expect(() => eventLimitsFromEnv('conditions=fast', undefined)).toThrow(/perSecond\/burst/);
    expect(() => eventLimitsFromEnv('conditions=0/5', undefined)).toThrow(/perSecond\/burst/);
    expect(() => eventLimitsFromEnv(undefined, '1/0')).toThrow(/FLOCK_EVENT_ABUSE_LIMIT/);
  });
});
