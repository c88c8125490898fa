/**
 * Who takes part in a round, from the available devices: a uniform random sample (crypto
 * randomness: devices must not be able to predict selection) of the target times the
 * over-selection factor, under per-round rules on who may be selected together (one device per
 * enrolled user, a few per network address). Pure but for the random source, which tests replace.
 */
import { randomInt } from 'node:crypto';
import type { AvailableDevice } from '../devices/device-directory.js';
import { selectionSize, type RoundPolicy } from './round-policy.js';

/** What the selection rules look at. */
export type Candidate = Pick<AvailableDevice, 'clientId' | 'userKey' | 'address'>;

export interface SelectionRules {
  /** The most devices selected from one network address per round; 0: no limit. */
  maxPerAddress: number;
}

/** An integer in [0, max): `crypto.randomInt` by default. */
export type RandomIndex = (max: number) => number;

export interface Selection {
  participants: string[];
  /** Candidates that could have been selected under the rules (what `minClients` is compared with). */
  selectable: number;
}

export function selectParticipants(candidates: readonly Candidate[], policy: RoundPolicy, rules: SelectionRules, random: RandomIndex = randomInt): Selection {
  // Shuffled first, so which device of a user or an address is kept is random too.
  const selectable = atMostPerAddress(onePerUser(shuffled(candidates, random)), rules.maxPerAddress);
  return { participants: selectable.slice(0, selectionSize(policy, selectable.length)).map((candidate) => candidate.clientId), selectable: selectable.length };
}

/**
 * At most one device per enrolled app user (the first in the given order): an account's many
 * devices count once per round. Devices without a user (no enrolment) are not limited.
 */
export function onePerUser<T extends Candidate>(candidates: readonly T[]): T[] {
  const users = new Set<string>();
  return candidates.filter((candidate) => {
    if (candidate.userKey === null) return true;
    if (users.has(candidate.userKey)) return false;
    users.add(candidate.userKey);
    return true;
  });
}

/**
 * At most `max` devices per network address (the first in the given order; 0: no limit): many
 * identities made up behind one address (Sybils) take at most that many slots of a round.
 */
export function atMostPerAddress<T extends Candidate>(candidates: readonly T[], max: number): T[] {
  if (max <= 0) return [...candidates];
  const taken = new Map<string, number>();
  return candidates.filter((candidate) => {
    const count = taken.get(candidate.address) ?? 0;
    if (count >= max) return false;
    taken.set(candidate.address, count + 1);
    return true;
  });
}

/** Fisher-Yates shuffle into a new array. */
function shuffled<T>(items: readonly T[], random: RandomIndex): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = random(i + 1);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool;
}
