import { describe, expect, it } from 'vitest';
import { busyRefusalSchema } from '@flock/client-sdk/protocol';
import { busyRetryAfterMs } from '../../src/boundary/busy.js';

const CONFIG = { eventLoopDelayMs: 250, retryAfterMs: 30_000 };

describe('busyRetryAfterMs (backpressure on arrivals)', () => {
  it('admits while the event-loop delay p99 is at or under the threshold', () => {
    expect(busyRetryAfterMs(0, CONFIG, 0.5)).toBeNull();
    expect(busyRetryAfterMs(250, CONFIG, 0.5)).toBeNull();
  });
  it('above it, tells arrivals to come back after the retry time plus up to as much again', () => {
    expect(busyRetryAfterMs(251, CONFIG, 0)).toBe(30_000);
    expect(busyRetryAfterMs(5000, CONFIG, 0.5)).toBe(45_000);
    expect(busyRetryAfterMs(5000, CONFIG, 0.999_999)).toBe(60_000);
  });
  it('is what the wire schema of a busy refusal accepts', () => {
    const retryAfterMs = busyRetryAfterMs(1000, CONFIG, 0.25)!;
    expect(busyRefusalSchema.parse({ code: 'coordinator_busy', retryAfterMs })).toEqual({ code: 'coordinator_busy', retryAfterMs });
    expect(busyRefusalSchema.safeParse({ code: 'coordinator_busy', retryAfterMs: -1 }).success).toBe(false);
  });
});
