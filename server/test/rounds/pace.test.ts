import { describe, expect, it } from 'vitest';
import { uploadDelayMs, reportWindowSchema } from '@flock/client-sdk/protocol';
import { PACED_SHARE_OF_DEADLINE, planReportWindows, type PaceConfig } from '../../src/rounds/pace.js';

const PACE: PaceConfig = { uploadsPerSecond: 500, uploadBytesPerSecond: 40 * 1024 * 1024, windowMs: 1000 };
const START = 1_000_000;
const TINY_BYTES = 442 * 4;

/** How many of `participants` devices each window holds, by notBefore. */
function perWindow(participants: number, plan: ReturnType<typeof planReportWindows>): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < participants; i++) {
    const { notBefore } = plan.windowOf(i);
    counts.set(notBefore, (counts.get(notBefore) ?? 0) + 1);
  }
  return counts;
}

describe('planReportWindows (pace steering)', () => {
  it('spreads 10,000 uploads over windows that each hold what the coordinator folds in one', () => {
    const plan = planReportWindows(10_000, TINY_BYTES, START, START + 120_000, PACE);
    expect(plan.windows).toBe(20);
    expect(plan.uploadsPerSecond).toBe(500);
    const counts = perWindow(10_000, plan);
    expect([...counts.values()]).toEqual(Array.from({ length: 20 }, () => 500));
    expect([...counts.keys()]).toEqual(Array.from({ length: 20 }, (_, i) => START + i * 1000));
    for (let i = 0; i < 10_000; i += 997) expect(reportWindowSchema.parse(plan.windowOf(i))).toEqual(plan.windowOf(i));
  });

  it('paces large models by bytes: 800 KB updates at 40 MiB/s are about 52 a second', () => {
    const plan = planReportWindows(1000, 796_840, START, START + 600_000, PACE);
    expect(plan.uploadsPerSecond).toBe(Math.ceil(1000 / plan.windows));
    expect(plan.windows).toBe(Math.ceil(1000 / ((40 * 1024 * 1024) / 796_840)));
  });

  it('keeps every window inside the paced share of the deadline, raising the rate when it must', () => {
    const deadlineAt = START + 10_000;
    const plan = planReportWindows(10_000, TINY_BYTES, START, deadlineAt, PACE);
    expect(plan.windows).toBe(7); // 7.5 s usable, whole windows of 1 s
    expect(plan.uploadsPerSecond).toBeGreaterThan(PACE.uploadsPerSecond);
    expect(perWindow(10_000, plan).size).toBe(7);
    for (let i = 0; i < 10_000; i++) expect(plan.windowOf(i).notAfter).toBeLessThanOrEqual(START + 10_000 * PACED_SHARE_OF_DEADLINE);
  });

  it('gives a small round one short window: the time its uploads need at the rate', () => {
    const plan = planReportWindows(3, TINY_BYTES, START, START + 120_000, PACE);
    expect(plan.windows).toBe(1);
    expect(plan.windowOf(0)).toEqual({ notBefore: START, notAfter: START + 6 });
    expect(plan.windowOf(2)).toEqual(plan.windowOf(0));
  });

  it('survives a deadline already passed', () => {
    const plan = planReportWindows(5, TINY_BYTES, START, START - 1, PACE);
    expect(plan.windows).toBe(1);
    expect(plan.windowOf(4).notAfter).toBeGreaterThanOrEqual(plan.windowOf(4).notBefore);
  });
});

describe('uploadDelayMs (the device side of a window)', () => {
  const window = { notBefore: START + 1000, notAfter: START + 2000 };
  it('waits until a random moment of a window still ahead', () => {
    expect(uploadDelayMs(window, START, 0)).toBe(1000);
    expect(uploadDelayMs(window, START, 0.5)).toBe(1500);
    expect(uploadDelayMs(window, START + 400, 0.999)).toBeCloseTo(1599, 0);
  });
  it('uploads at once without a window, inside it, or late', () => {
    expect(uploadDelayMs(undefined, START, 0.5)).toBe(0);
    expect(uploadDelayMs(window, START + 1500, 0.5)).toBe(0);
    expect(uploadDelayMs(window, START + 5000, 0.5)).toBe(0);
  });
  it('refuses a window that ends before it begins', () => {
    expect(reportWindowSchema.safeParse({ notBefore: 2, notAfter: 1 }).success).toBe(false);
  });
});
