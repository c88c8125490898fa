/** The round engine's own helpers around the round records of the REST contract (contract/rounds.ts). */
import type { RoundMetrics } from '../contract/index.js';

/** Metrics of a round that just opened. */
export function emptyRoundMetrics(): RoundMetrics {
  return {
    eligibleAtSelection: 0,
    selected: 0,
    reported: 0,
    accepted: 0,
    rejected: {},
    dropped: {},
    totalExamples: 0,
    meanTrainLoss: null,
    updateNorm: null,
    bytesReceived: 0,
    bytesUp: 0,
    bytesDown: 0,
    decodeMs: 0,
    validationMs: 0,
    aggregationMs: 0,
    durationMs: null,
    localEvaluation: null,
    updateBound: null,
    nextUpdateBound: null,
    exampleCap: null,
    nextExampleCap: null,
    dpClipNorm: null,
    nextDpClipNorm: null,
    expectedUpdates: null,
    clippedUpdates: 0,
    clampedExamples: 0,
  };
}
