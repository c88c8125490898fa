import { describe, expect, it } from 'vitest';
import { formatBytes, formatCounts, formatDuration, formatInt, formatNumber, formatPercent, formatTime, table } from '../../src/cli/format.js';

describe('CLI formatting', () => {
  it('formats durations at every scale', () => {
    expect(formatDuration(null)).toBe('-');
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(42.4)).toBe('42 ms');
    expect(formatDuration(12_345)).toBe('12.3 s');
    expect(formatDuration(200_000)).toBe('3m 20s');
    expect(formatDuration(7_500_000)).toBe('2h 05m');
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000)).toBe('3d 4h');
  });

  it('formats percentages, numbers, bytes, counts and times', () => {
    expect(formatPercent(0.97123)).toBe('97.12%');
    expect(formatPercent(1)).toBe('100.00%');
    expect(formatPercent(undefined)).toBe('-');
    expect(formatInt(1_663_370)).toBe('1,663,370');
    expect(formatNumber(0.093412345)).toBe('0.09341');
    expect(formatNumber(NaN)).toBe('-');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(6_653_480)).toBe('6.3 MiB');
    expect(formatCounts({ non_finite: 1, version_mismatch: 2 })).toBe('version_mismatch 2, non_finite 1');
    expect(formatCounts({})).toBe('none');
    expect(formatTime('2026-05-04T10:12:41.512Z')).toBe('2026-05-04 10:12:41Z');
  });

  it('draws tables without ANSI colour codes', () => {
    const text = table(['a', 'b'], [[1, 'x']]);
    expect(text).toContain('│ 1 │ x │');
    expect(text).not.toContain('\u001b[');
  });
});
