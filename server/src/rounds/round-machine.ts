import type { RoundOutcome, RoundStatus } from '@flock/client-sdk/protocol';
import { canSelect, quorumReached, reportingEnd, type ReportingEnd, type RoundPolicy } from './round-policy.js';

/**
 * The round state machine (Bonawitz et al. 2019), pure: `advance(state, event, policy)` returns the
 * next state and the effects the service must carry out (persist, send, time, commit). It does no
 * I/O and reads no clock; which moves exist is the TRANSITIONS table, and an event the table has
 * no entry for in the current state is refused, whatever it is.
 */

/** The machine's state: small and immutable (participants themselves live in the RoundRoster). */
export interface RoundState {
  readonly status: RoundStatus;
  /** Participants that have neither uploaded nor dropped out. */
  readonly pending: number;
  /** Updates accepted into the aggregate. */
  readonly accepted: number;
}

export type RoundEvent =
  /** Enough devices may be available: `participants` were sampled from `available` of them. */
  | { type: 'devicesAvailable'; available: number; participants: readonly string[] }
  | { type: 'selectionTimedOut'; available: number }
  /** The aggregator and plan are ready; devices must answer by deadlineAt (ms since the epoch). */
  | { type: 'configured'; deadlineAt: number }
  | { type: 'configurationFailed'; message: string }
  | { type: 'uploadAccepted' }
  /** A participant's one upload was refused (it counts as its answer). */
  | { type: 'uploadRejected' }
  /** A participant that had not answered disconnected or abandoned. */
  | { type: 'participantDropped' }
  | { type: 'deadlineReached' }
  /** The new version and the round's end are stored (one transaction); `at` is the time stored. */
  | { type: 'commitSucceeded'; version: number; parentVersion: number; at: string }
  | { type: 'commitFailed'; message: string }
  | { type: 'cancelled' }
  | { type: 'shutdown' };

export type RoundEventType = RoundEvent['type'];

export type RoundTimer = 'selection' | 'deadline';

export type RoundEffect =
  /** Store the move (the round's status and metrics, plus a transition row); a move to failed/aborted ends the round with `note` as its error. */
  | { type: 'persistTransition'; from: RoundStatus; to: RoundStatus; note: string | null }
  | { type: 'startTimer'; timer: RoundTimer; ms: number }
  | { type: 'clearTimer' }
  /** Take the participants from the directory and enrol them in the round. */
  | { type: 'assignParticipants'; participants: readonly string[]; eligible: number }
  /** Load the base model, begin the aggregator, compute the plan; then report configured or configurationFailed. */
  | { type: 'prepareConfiguration' }
  /** Send each participant its plan, once the move to reporting is stored. */
  | { type: 'sendConfigure'; deadlineAt: number }
  /** Finish the aggregate and store the new version; then report commitSucceeded or commitFailed. `note` ends up on the committed transition. */
  | { type: 'commit'; note: ReportingEnd }
  /** The commit is stored: show it on the in-memory record. */
  | { type: 'recordCommit'; version: number; at: string }
  /** Tell the participants how the round ended, release the devices, forget the round. */
  | { type: 'closeRound'; outcome: RoundOutcome; message: string | null; version: number | null }
  /** Tell every device (and the bus) about the new version. */
  | { type: 'publishVersion'; version: number; parentVersion: number };

export interface RoundStep {
  state: RoundState;
  effects: RoundEffect[];
}

export type Advance = ({ accepted: true } & RoundStep) | { accepted: false; reason: string };

type EventOf<T extends RoundEventType> = Extract<RoundEvent, { type: T }>;
type Handler<T extends RoundEventType> = (state: RoundState, event: EventOf<T>, policy: RoundPolicy) => RoundStep;
type Handlers = { readonly [T in RoundEventType]?: Handler<T> };

/** A new round: selecting, with the selection clock running. */
export function openRound(policy: RoundPolicy): RoundStep {
  return {
    state: { status: 'selecting', pending: 0, accepted: 0 },
    effects: [{ type: 'startTimer', timer: 'selection', ms: policy.selectionTimeoutMs }],
  };
}

export function advance(state: RoundState, event: RoundEvent, policy: RoundPolicy): Advance {
  const handler = TRANSITIONS[state.status][event.type] as Handler<RoundEventType> | undefined;
  if (!handler) return { accepted: false, reason: `${event.type} is not allowed while the round is ${state.status}` };
  return { accepted: true, ...handler(state, event, policy) };
}

/** The events the table accepts in a status (the terminal statuses accept none). */
export function acceptedEvents(status: RoundStatus): RoundEventType[] {
  return Object.keys(TRANSITIONS[status]) as RoundEventType[];
}

function stay(state: RoundState): RoundStep {
  return { state, effects: [] };
}

function transition(from: RoundStatus, to: RoundStatus, note: string | null): RoundEffect {
  return { type: 'persistTransition', from, to, note };
}

/** Ends the round without a commit: the global model is untouched. */
function end(state: RoundState, outcome: 'failed' | 'aborted', message: string): RoundStep {
  return {
    state: { ...state, status: outcome },
    effects: [{ type: 'clearTimer' }, transition(state.status, outcome, message), { type: 'closeRound', outcome, message, version: null }],
  };
}

function closeReporting(state: RoundState, policy: RoundPolicy, why: ReportingEnd): RoundStep {
  if (!quorumReached(policy, state.accepted)) {
    return end(state, 'failed', `quorum not reached (${why}): ${state.accepted} valid update(s), ${policy.minClients} needed`);
  }
  return {
    state: { ...state, status: 'committing' },
    effects: [{ type: 'clearTimer' }, transition(state.status, 'committing', why), { type: 'commit', note: why }],
  };
}

/** After each answer (or drop) while reporting: end reporting if the completion policy says so. */
function answered(state: RoundState, policy: RoundPolicy): RoundStep {
  const why = reportingEnd(policy, state);
  return why ? closeReporting(state, policy, why) : stay(state);
}

/** One participant fewer to wait for. */
function onePendingFewer(state: RoundState): RoundState {
  return { ...state, pending: state.pending - 1 };
}

/** Any round in flight can be cancelled by an operator or aborted by a shutdown. */
const ABORTS: Handlers = {
  cancelled: (state) => end(state, 'aborted', 'cancelled by an operator'),
  shutdown: (state) => end(state, 'aborted', 'coordinator shutting down'),
};

/**
 * The transition table: for each status, the events it accepts and what they do.
 *
 *   selecting   devicesAvailable (>= minClients) -> configuring; selectionTimedOut -> failed
 *   configuring configured -> reporting (or straight on if nobody is left); configurationFailed -> failed
 *   reporting   uploadAccepted / uploadRejected / participantDropped / deadlineReached
 *                 -> committing (quorum) or failed (no quorum) once the completion policy ends reporting
 *   committing  commitSucceeded -> committed; commitFailed -> failed
 *   every non-terminal status: cancelled / shutdown -> aborted
 */
export const TRANSITIONS: { readonly [S in RoundStatus]: Handlers } = {
  selecting: {
    devicesAvailable: (state, { available, participants }, policy) =>
      canSelect(policy, available)
        ? {
            state: { ...state, status: 'configuring', pending: participants.length },
            effects: [
              { type: 'clearTimer' },
              { type: 'assignParticipants', participants, eligible: available },
              transition('selecting', 'configuring', `${participants.length} client(s) selected`),
              { type: 'prepareConfiguration' },
            ],
          }
        : stay(state),
    selectionTimedOut: (state, { available }, policy) =>
      end(state, 'failed', `selection timed out: ${available} eligible client(s) available, ${policy.minClients} needed`),
    ...ABORTS,
  },
  configuring: {
    configured: (state, { deadlineAt }, policy) => {
      const reporting: RoundState = { ...state, status: 'reporting' };
      const why = reportingEnd(policy, reporting);
      const next: RoundStep = why
        ? closeReporting(reporting, policy, why)
        : { state: reporting, effects: [{ type: 'startTimer', timer: 'deadline', ms: policy.deadlineMs }] };
      return { state: next.state, effects: [transition('configuring', 'reporting', null), { type: 'sendConfigure', deadlineAt }, ...next.effects] };
    },
    configurationFailed: (state, { message }) => end(state, 'failed', `configuration failed: ${message}`),
    participantDropped: (state) => stay(onePendingFewer(state)),
    ...ABORTS,
  },
  reporting: {
    uploadAccepted: (state, _event, policy) => answered({ ...onePendingFewer(state), accepted: state.accepted + 1 }, policy),
    uploadRejected: (state, _event, policy) => answered(onePendingFewer(state), policy),
    participantDropped: (state, _event, policy) => answered(onePendingFewer(state), policy),
    deadlineReached: (state, _event, policy) => closeReporting(state, policy, 'deadline reached'),
    ...ABORTS,
  },
  committing: {
    commitSucceeded: (state, { version, parentVersion, at }) => ({
      state: { ...state, status: 'committed' },
      effects: [
        { type: 'recordCommit', version, at },
        { type: 'closeRound', outcome: 'committed', message: null, version },
        { type: 'publishVersion', version, parentVersion },
      ],
    }),
    commitFailed: (state, { message }) => end(state, 'failed', message),
    participantDropped: (state) => stay(onePendingFewer(state)),
    ...ABORTS,
  },
  committed: {},
  failed: {},
  aborted: {},
};
