/** The round state machine on its own: no sockets, no storage, no clock. */
import { describe, expect, it } from 'vitest';
import { ROUND_STATUSES, isRoundFinished, type RoundStatus } from '@flock/client-sdk/protocol';
import { mulberry32 } from '../../src/datasets/seeded-random.js';
import {
  acceptedEvents,
  advance,
  openRound,
  type RoundEffect,
  type RoundEvent,
  type RoundEventType,
  type RoundState,
  type RoundStep,
} from '../../src/rounds/round-machine.js';
import type { ReportingEnd, RoundPolicy } from '../../src/rounds/round-policy.js';

const policy: RoundPolicy = { minClients: 2, targetClients: 3, overSelection: 1.3, selectionTimeoutMs: 1000, deadlineMs: 5000 };

const ALL_EVENTS: Record<RoundEventType, RoundEvent> = {
  devicesAvailable: { type: 'devicesAvailable', available: 5, participants: ['a', 'b', 'c', 'd'] },
  selectionTimedOut: { type: 'selectionTimedOut', available: 1 },
  configured: { type: 'configured', deadlineAt: 123_456 },
  configurationFailed: { type: 'configurationFailed', message: 'no weights' },
  uploadAccepted: { type: 'uploadAccepted' },
  uploadRejected: { type: 'uploadRejected' },
  participantDropped: { type: 'participantDropped' },
  deadlineReached: { type: 'deadlineReached' },
  commitSucceeded: { type: 'commitSucceeded', version: 8, parentVersion: 7, at: '2026-01-01T00:00:00.000Z' },
  commitFailed: { type: 'commitFailed', message: 'disk full' },
  cancelled: { type: 'cancelled' },
  shutdown: { type: 'shutdown' },
};

/** The transition table as the docs draw it. */
const TABLE: Record<RoundStatus, RoundEventType[]> = {
  selecting: ['devicesAvailable', 'selectionTimedOut', 'cancelled', 'shutdown'],
  configuring: ['configured', 'configurationFailed', 'participantDropped', 'cancelled', 'shutdown'],
  reporting: ['uploadAccepted', 'uploadRejected', 'participantDropped', 'deadlineReached', 'cancelled', 'shutdown'],
  committing: ['commitSucceeded', 'commitFailed', 'participantDropped', 'cancelled', 'shutdown'],
  committed: [],
  failed: [],
  aborted: [],
};

function state(status: RoundStatus, pending = 2, accepted = 0): RoundState {
  return Object.freeze({ status, pending, accepted });
}

function step(from: RoundState, event: RoundEvent): RoundStep {
  const result = advance(from, event, policy);
  if (!result.accepted) throw new Error(result.reason);
  return { state: result.state, effects: result.effects };
}

function ended(from: RoundStatus, outcome: 'failed' | 'aborted', message: string): RoundEffect[] {
  return [{ type: 'clearTimer' }, { type: 'persistTransition', from, to: outcome, note: message }, { type: 'closeRound', outcome, message, version: null }];
}

describe('the transition table', () => {
  it('accepts exactly the documented events in each status, and no event once the round has ended', () => {
    for (const status of ROUND_STATUSES) expect(acceptedEvents(status).sort()).toEqual([...TABLE[status]].sort());
  });

  it('refuses every other (status, event) pair and leaves the state as it was', () => {
    let refused = 0;
    for (const status of ROUND_STATUSES) {
      for (const event of Object.values(ALL_EVENTS)) {
        if (TABLE[status].includes(event.type)) continue;
        const from = state(status);
        const result = advance(from, event, policy);
        expect(result).toEqual({ accepted: false, reason: `${event.type} is not allowed while the round is ${status}` });
        refused++;
      }
    }
    // 7 statuses x 12 events, minus the 20 allowed pairs
    expect(refused).toBe(7 * 12 - 20);
  });

  it('never changes the state it is given', () => {
    for (const status of ROUND_STATUSES) {
      for (const event of Object.values(ALL_EVENTS)) {
        const from = state(status, 1, 1);
        advance(from, event, policy); // frozen: a mutation would throw
        expect(from).toEqual({ status, pending: 1, accepted: 1 });
      }
    }
  });
});

describe('selecting', () => {
  it('starts with the selection clock running', () => {
    expect(openRound(policy)).toEqual({
      state: { status: 'selecting', pending: 0, accepted: 0 },
      effects: [{ type: 'startTimer', timer: 'selection', ms: 1000 }],
    });
  });

  it('waits while fewer than minClients devices are available', () => {
    expect(step(state('selecting', 0), { type: 'devicesAvailable', available: 1, participants: ['a'] })).toEqual({ state: state('selecting', 0), effects: [] });
  });

  it('takes the sampled participants once minClients are available and prepares the configuration', () => {
    expect(step(state('selecting', 0), { type: 'devicesAvailable', available: 2, participants: ['a', 'b'] })).toEqual({
      state: { status: 'configuring', pending: 2, accepted: 0 },
      effects: [
        { type: 'clearTimer' },
        { type: 'assignParticipants', participants: ['a', 'b'], eligible: 2 },
        { type: 'persistTransition', from: 'selecting', to: 'configuring', note: '2 client(s) selected' },
        { type: 'prepareConfiguration' },
      ],
    });
  });

  it('fails when the selection times out', () => {
    const message = 'selection timed out: 1 eligible client(s) available, 2 needed';
    expect(step(state('selecting', 0), ALL_EVENTS.selectionTimedOut)).toEqual({ state: state('failed', 0), effects: ended('selecting', 'failed', message) });
  });
});

describe('configuring', () => {
  it('sends the plan, opens reporting and starts the deadline clock', () => {
    expect(step(state('configuring', 3), ALL_EVENTS.configured)).toEqual({
      state: { status: 'reporting', pending: 3, accepted: 0 },
      effects: [
        { type: 'persistTransition', from: 'configuring', to: 'reporting', note: null },
        { type: 'sendConfigure', deadlineAt: 123_456 },
        { type: 'startTimer', timer: 'deadline', ms: 5000 },
      ],
    });
  });

  it('goes straight through reporting when every participant dropped out during configuration', () => {
    expect(step(state('configuring', 0), ALL_EVENTS.configured)).toEqual({
      state: { status: 'failed', pending: 0, accepted: 0 },
      effects: [
        { type: 'persistTransition', from: 'configuring', to: 'reporting', note: null },
        { type: 'sendConfigure', deadlineAt: 123_456 },
        ...ended('reporting', 'failed', 'quorum not reached (all participants answered): 0 valid update(s), 2 needed'),
      ],
    });
  });

  it('fails when the configuration cannot be prepared', () => {
    expect(step(state('configuring'), ALL_EVENTS.configurationFailed)).toEqual({
      state: state('failed'),
      effects: ended('configuring', 'failed', 'configuration failed: no weights'),
    });
  });

  it('counts a participant that drops out and waits for the configuration', () => {
    expect(step(state('configuring', 3), ALL_EVENTS.participantDropped)).toEqual({ state: state('configuring', 2), effects: [] });
  });
});

describe('reporting and the completion policy', () => {
  const committing = (from: RoundState, why: ReportingEnd): RoundStep => ({
    state: { ...from, status: 'committing' },
    effects: [{ type: 'clearTimer' }, { type: 'persistTransition', from: 'reporting', to: 'committing', note: why }, { type: 'commit', note: why }],
  });

  it('folds uploads until the target is reached, then commits', () => {
    let current = state('reporting', 4, 0);
    for (let accepted = 1; accepted < policy.targetClients; accepted++) {
      const next = step(current, ALL_EVENTS.uploadAccepted);
      expect(next).toEqual({ state: state('reporting', 4 - accepted, accepted), effects: [] });
      current = next.state;
    }
    expect(step(current, ALL_EVENTS.uploadAccepted)).toEqual(committing(state('reporting', 1, 3), 'target reached'));
  });

  it('commits when every participant answered and the quorum is met', () => {
    expect(step(state('reporting', 1, 2), ALL_EVENTS.uploadRejected)).toEqual(committing(state('reporting', 0, 2), 'all participants answered'));
    expect(step(state('reporting', 1, 2), ALL_EVENTS.participantDropped)).toEqual(committing(state('reporting', 0, 2), 'all participants answered'));
  });

  it('fails when every participant answered without the quorum', () => {
    const message = 'quorum not reached (all participants answered): 1 valid update(s), 2 needed';
    expect(step(state('reporting', 1, 1), ALL_EVENTS.uploadRejected)).toEqual({ state: state('failed', 0, 1), effects: ended('reporting', 'failed', message) });
    expect(step(state('reporting', 1, 1), ALL_EVENTS.participantDropped)).toEqual({
      state: state('failed', 0, 1),
      effects: ended('reporting', 'failed', message),
    });
    // the last upload accepted but the quorum still missed: 1 of 2
    expect(step(state('reporting', 1, 0), ALL_EVENTS.uploadAccepted)).toEqual({
      state: state('failed', 0, 1),
      effects: ended('reporting', 'failed', 'quorum not reached (all participants answered): 1 valid update(s), 2 needed'),
    });
  });

  it('keeps reporting while participants are pending and the target is not reached', () => {
    expect(step(state('reporting', 3, 1), ALL_EVENTS.uploadRejected)).toEqual({ state: state('reporting', 2, 1), effects: [] });
    expect(step(state('reporting', 3, 1), ALL_EVENTS.participantDropped)).toEqual({ state: state('reporting', 2, 1), effects: [] });
  });

  it('at the deadline, commits with the quorum and fails without it', () => {
    expect(step(state('reporting', 2, 2), ALL_EVENTS.deadlineReached)).toEqual(committing(state('reporting', 2, 2), 'deadline reached'));
    expect(step(state('reporting', 2, 1), ALL_EVENTS.deadlineReached)).toEqual({
      state: state('failed', 2, 1),
      effects: ended('reporting', 'failed', 'quorum not reached (deadline reached): 1 valid update(s), 2 needed'),
    });
  });
});

describe('committing', () => {
  it('records the commit, closes the round and publishes the version', () => {
    expect(step(state('committing', 0, 3), ALL_EVENTS.commitSucceeded)).toEqual({
      state: state('committed', 0, 3),
      effects: [
        { type: 'recordCommit', version: 8, at: '2026-01-01T00:00:00.000Z' },
        { type: 'closeRound', outcome: 'committed', message: null, version: 8 },
        { type: 'publishVersion', version: 8, parentVersion: 7 },
      ],
    });
  });

  it('fails with the commit error', () => {
    expect(step(state('committing', 0, 3), ALL_EVENTS.commitFailed)).toEqual({
      state: state('failed', 0, 3),
      effects: ended('committing', 'failed', 'disk full'),
    });
  });

  it('counts a late drop without reopening anything', () => {
    expect(step(state('committing', 1, 3), ALL_EVENTS.participantDropped)).toEqual({ state: state('committing', 0, 3), effects: [] });
  });
});

describe('aborting', () => {
  it('aborts every round in flight on an operator cancel or a shutdown', () => {
    for (const status of ROUND_STATUSES.filter((s) => !isRoundFinished(s))) {
      expect(step(state(status), ALL_EVENTS.cancelled)).toEqual({ state: state('aborted'), effects: ended(status, 'aborted', 'cancelled by an operator') });
      expect(step(state(status), ALL_EVENTS.shutdown)).toEqual({ state: state('aborted'), effects: ended(status, 'aborted', 'coordinator shutting down') });
    }
  });
});

describe('whole rounds', () => {
  /** Runs events through the machine and returns the persisted path and the last state. */
  function run(events: RoundEvent[]): { path: string[]; final: RoundState; effects: RoundEffect[] } {
    let current = openRound(policy).state;
    const effects: RoundEffect[] = [];
    for (const event of events) {
      const result = advance(current, event, policy);
      if (!result.accepted) continue;
      current = result.state;
      effects.push(...result.effects);
    }
    const path = effects.flatMap((effect) =>
      effect.type === 'persistTransition' ? [`${effect.from}->${effect.to}`] : effect.type === 'recordCommit' ? ['committing->committed'] : [],
    );
    return { path, final: current, effects };
  }

  it('stores the same transitions as the REST API lists for a committed round', () => {
    const { path, final } = run([
      { type: 'devicesAvailable', available: 6, participants: ['a', 'b', 'c', 'd'] },
      ALL_EVENTS.configured,
      ALL_EVENTS.uploadAccepted,
      ALL_EVENTS.participantDropped,
      ALL_EVENTS.uploadAccepted,
      ALL_EVENTS.uploadAccepted,
      ALL_EVENTS.uploadAccepted, // refused: reporting is over
      ALL_EVENTS.commitSucceeded,
      ALL_EVENTS.cancelled, // refused: the round has ended
    ]);
    expect(path).toEqual(['selecting->configuring', 'configuring->reporting', 'reporting->committing', 'committing->committed']);
    expect(final).toEqual({ status: 'committed', pending: 0, accepted: 3 });
  });

  it('keeps its invariants over random event sequences', () => {
    const random = mulberry32(2024);
    const events = Object.values(ALL_EVENTS);
    for (let trial = 0; trial < 500; trial++) {
      let current = openRound(policy).state;
      let closes = 0;
      for (let i = 0; i < 40; i++) {
        let event = events[Math.floor(random() * events.length)]!;
        // The service dispatches answers and drops only for pending participants.
        if ((event.type === 'uploadAccepted' || event.type === 'uploadRejected' || event.type === 'participantDropped') && current.pending === 0) continue;
        if (event.type === 'devicesAvailable') {
          const available = Math.floor(random() * 6);
          event = { type: 'devicesAvailable', available, participants: Array.from({ length: Math.min(4, available) }, (_, k) => `d${k}`) };
        }
        const result = advance(current, event, policy);
        if (!result.accepted) {
          expect(acceptedEvents(current.status)).not.toContain(event.type);
          continue;
        }
        for (const effect of result.effects) {
          if (effect.type === 'persistTransition') expect(acceptedEvents(effect.from).length).toBeGreaterThan(0); // only rounds in flight move
          if (effect.type === 'closeRound') closes++;
        }
        // each persisted move starts where the previous one ended
        const moves = result.effects.filter((effect) => effect.type === 'persistTransition');
        moves.forEach((move, k) => expect(move.from).toBe(k === 0 ? current.status : moves[k - 1]!.to));
        current = result.state;
        expect(current.pending).toBeGreaterThanOrEqual(0);
        expect(current.accepted).toBeLessThanOrEqual(policy.targetClients);
        expect(closes).toBe(isRoundFinished(current.status) ? 1 : 0);
      }
    }
  });
});
