import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inCi, requireChromium } from './chromium.js';

const MISSING = join(tmpdir(), 'flock-no-such-chromium');

describe('requireChromium', () => {
  afterEach(() => vi.restoreAllMocks());

  it('lets the suite run where the browser exists', () => {
    expect(requireChromium(process.execPath, { CI: 'true' })).toBe(true);
  });

  it('skips with a printed reason on a developer machine', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    expect(requireChromium(MISSING, {})).toBe(false);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining(`Chromium is missing at ${MISSING}`));
  });

  it('fails under CI instead of skipping', () => {
    expect(() => requireChromium(MISSING, { CI: 'true' })).toThrow(/Chromium is missing at .* under CI the browser suites must run/);
  });

  it('reads CI the way CI services set it', () => {
    expect([undefined, '', 'false', '0', 'FALSE'].map((CI) => inCi({ CI }))).toEqual([false, false, false, false, false]);
    expect(['true', '1', 'TRUE', 'yes'].map((CI) => inCi({ CI }))).toEqual([true, true, true, true]);
  });
});
