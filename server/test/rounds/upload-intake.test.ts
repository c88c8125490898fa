/** The ordered upload checks and the participant roster, without sockets or storage. */
import { describe, expect, it } from 'vitest';
import type { RoundStatus } from '@flock/client-sdk/protocol';
import { RoundRoster } from '../../src/rounds/round-roster.js';
import { createFloat64Accumulator } from '../../src/aggregation/kernels/float64-accumulator.js';
import { admitUpload, parseUpload, validateUpdate, type ParsedUpload, type UpdateExpectation } from '../../src/rounds/upload-intake.js';
import { rejectionReasonOf } from '../support/rejection-reason.js';

const expectation: UpdateExpectation = {
  roundId: 'r1',
  baseVersion: 4,
  weightSpecs: [
    { name: 'w', shape: [2, 2], dtype: 'float32' },
    { name: 'b', shape: [2], dtype: 'float32' },
  ],
  maxUpdateNorm: 10,
};

function payload(overrides: Record<string, unknown> = {}, values: number[] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]): Record<string, unknown> {
  return {
    roundId: 'r1',
    modelVersion: 4,
    numExamples: 20,
    trainLoss: 0.3,
    delta: { shapes: [[2, 2], [2]], data: new Float32Array(values).buffer },
    ...overrides,
  };
}

function roster(): RoundRoster {
  const r = new RoundRoster();
  r.enrol(['a', 'b', 'c']);
  return r;
}

describe('parseUpload (size, then schema)', () => {
  it('refuses an oversized upload before looking at its schema', () => {
    expect(rejectionReasonOf(() => parseUpload({ delta: { data: new Uint8Array(100) } }, 99))).toBe('payload_too_large');
    expect(rejectionReasonOf(() => parseUpload(payload({ numExamples: -1 }), 1000))).toBe('malformed');
    expect(rejectionReasonOf(() => parseUpload(null, 1000))).toBe('malformed');
  });

  it('returns the fields and the byte length of a valid upload', () => {
    expect(parseUpload(payload(), 1000)).toMatchObject({ roundId: 'r1', modelVersion: 4, numExamples: 20, shapes: [[2, 2], [2]], byteLength: 24 });
  });
});

describe('admitUpload (round open, one upload, participant)', () => {
  const target = (status: RoundStatus | null, r: RoundRoster | null = roster()) => ({ roundId: 'r1', status, roster: r });

  it('tells a finished or unknown round from one not collecting yet', () => {
    expect(rejectionReasonOf(() => admitUpload(target('committed', null), 'a'))).toBe('round_closed');
    expect(rejectionReasonOf(() => admitUpload(target(null, null), 'a'))).toBe('round_not_open');
    expect(rejectionReasonOf(() => admitUpload(target('selecting'), 'a'))).toBe('round_not_open');
    expect(rejectionReasonOf(() => admitUpload(target('configuring'), 'a'))).toBe('round_not_open');
    expect(rejectionReasonOf(() => admitUpload(target('committing'), 'a'))).toBe('round_closed');
    expect(rejectionReasonOf(() => admitUpload(target('aborted'), 'a'))).toBe('round_closed');
  });

  it('admits each participant once and refuses outsiders', () => {
    const r = roster();
    expect(rejectionReasonOf(() => admitUpload(target('reporting', r), 'z'))).toBe('not_selected');
    expect(rejectionReasonOf(() => admitUpload(target('reporting', r), 'a'))).toBe('accepted');
    expect(rejectionReasonOf(() => admitUpload(target('reporting', r), 'a'))).toBe('duplicate_upload');
    expect(r.hasAnswered('a')).toBe(true);
  });
});

describe('validateUpdate (version, shapes, finiteness, norm)', () => {
  const upload = (overrides: Record<string, unknown> = {}, values?: number[]): ParsedUpload => parseUpload(payload(overrides, values), 1000);

  it('checks in order and returns the flat delta with its norm', () => {
    expect(rejectionReasonOf(() => validateUpdate(upload({ modelVersion: 3 }), expectation))).toBe('version_mismatch');
    expect(rejectionReasonOf(() => validateUpdate(upload({ delta: { shapes: [[4], [2]], data: new Float32Array(6).buffer } }), expectation))).toBe(
      'shape_mismatch',
    );
    expect(rejectionReasonOf(() => validateUpdate(upload({}, [1, 2, 3]), expectation))).toBe('shape_mismatch');
    expect(rejectionReasonOf(() => validateUpdate(upload({}, [0, 0, Number.NaN, 0, 0, 0]), expectation))).toBe('non_finite');
    expect(rejectionReasonOf(() => validateUpdate(upload({}, [20, 0, 0, 0, 0, 0]), expectation))).toBe('norm_exceeded');
    const { delta, norm } = validateUpdate(upload({}, [3, 4, 0, 0, 0, 0]), expectation);
    expect(Array.from(delta)).toEqual([3, 4, 0, 0, 0, 0]);
    expect(norm).toBe(5);
  });

  it("measures the delta with the round aggregator's kernel when given one", () => {
    const accumulator = createFloat64Accumulator(6);
    const { norm } = validateUpdate(upload({}, [3, 4, 0, 0, 0, 0]), expectation, (values) => accumulator.sumOfSquares(values));
    expect(norm).toBe(5);
    expect(
      rejectionReasonOf(() => validateUpdate(upload({}, [0, Number.POSITIVE_INFINITY, 0, 0, 0, 0]), expectation, (values) => accumulator.sumOfSquares(values))),
    ).toBe('non_finite');
  });
});

describe('RoundRoster', () => {
  it('drops only participants that have not answered, and keeps those that did', () => {
    const r = roster();
    r.answer('a');
    expect(r.drop('a')).toBe(false);
    expect(r.drop('b')).toBe(true);
    expect(r.drop('b')).toBe(false);
    expect(r.drop('z')).toBe(false);
    expect(r.isParticipant('b')).toBe(false);
    expect([...r.members()].sort()).toEqual(['a', 'c']);
  });
});

describe('validateUpdate in a personal-layers round', () => {
  const upload = (overrides: Record<string, unknown> = {}, values?: number[]): ParsedUpload => parseUpload(payload(overrides, values), 1000);
  const personalRound: UpdateExpectation = { ...expectation, personalLayers: ['b'] };
  // Weight names are `<layer>/<weight>`; here the layers are `w` and `b` (one tensor each).
  const named: UpdateExpectation = {
    ...personalRound,
    weightSpecs: [
      { name: 'w/kernel', shape: [2, 2], dtype: 'float32' },
      { name: 'b/bias', shape: [2], dtype: 'float32' },
    ],
  };

  it('takes the shared tensors only and widens them with zeros at the personal ones', () => {
    const { delta, norm } = validateUpdate(upload({ delta: { shapes: [[2, 2]], data: new Float32Array([1, 2, 3, 4]).buffer } }), named);
    expect(Array.from(delta)).toEqual([1, 2, 3, 4, 0, 0]);
    expect(norm).toBeCloseTo(Math.sqrt(30));
  });

  it('refuses an upload that carries the personal tensors too', () => {
    expect(rejectionReasonOf(() => validateUpdate(upload(), named))).toBe('shape_mismatch');
    expect(rejectionReasonOf(() => validateUpdate(upload({ delta: { shapes: [[2, 2]], data: new Float32Array(5).buffer } }), named))).toBe('shape_mismatch');
  });
});
