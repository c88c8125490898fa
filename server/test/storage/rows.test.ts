/** Round rows stored by an older coordinator read in today's shape. */
import { describe, expect, it } from 'vitest';
import { roundMetricsSchema } from '../../src/contract/rounds.js';
import { emptyRoundMetrics } from '../../src/rounds/round-types.js';
import { parseJsonText, rowToRound, type RoundRow } from '../../src/storage/rows.js';

describe('rowToRound', () => {
  it('reads metrics stored before decodeMs existed with decodeMs 0, the rest as stored', () => {
    const { decodeMs: _absent, ...older } = { ...emptyRoundMetrics(), accepted: 3, validationMs: 12.5, aggregationMs: 4 };
    const row: RoundRow = {
      id: 'r1',
      base_version: 1,
      status: 'committed',
      params: '{}',
      metrics: JSON.stringify(older),
      committed_version: 2,
      error: null,
      created_at: '2026-12-04T00:00:00.000Z',
      updated_at: '2026-12-04T00:00:00.000Z',
      ended_at: '2026-12-04T00:00:01.000Z',
    };
    const { metrics } = rowToRound(row, parseJsonText);
    expect(metrics).toMatchObject({ decodeMs: 0, accepted: 3, validationMs: 12.5, aggregationMs: 4 });
    // The REST contract reads such a record too (a CLI against an older coordinator).
    expect(roundMetricsSchema.parse(older).decodeMs).toBe(0);
  });
});
