import { describe, expect, it } from 'vitest';
import { canSelect, quorumReached, reportingEnd, selectionSize, type RoundPolicy } from '../../src/rounds/round-policy.js';

const policy: RoundPolicy = { minClients: 3, targetClients: 10, overSelection: 1.3, selectionTimeoutMs: 1000, deadlineMs: 1000 };

describe('the round policy', () => {
  it('selects once minClients devices are available', () => {
    expect(canSelect(policy, 2)).toBe(false);
    expect(canSelect(policy, 3)).toBe(true);
  });

  it('takes ceil(target x over-selection) devices, or all of them when fewer are available', () => {
    expect(selectionSize(policy, 100)).toBe(13);
    expect(selectionSize(policy, 5)).toBe(5);
    expect(selectionSize({ ...policy, overSelection: 1 }, 100)).toBe(10);
  });

  it('ends reporting at the target, or when nobody is pending, and the target wins a tie', () => {
    expect(reportingEnd(policy, { accepted: 9, pending: 4 })).toBeNull();
    expect(reportingEnd(policy, { accepted: 10, pending: 3 })).toBe('target reached');
    expect(reportingEnd(policy, { accepted: 10, pending: 0 })).toBe('target reached');
    expect(reportingEnd(policy, { accepted: 2, pending: 0 })).toBe('all participants answered');
  });

  it('commits only with minClients accepted updates', () => {
    expect(quorumReached(policy, 2)).toBe(false);
    expect(quorumReached(policy, 3)).toBe(true);
  });
});
