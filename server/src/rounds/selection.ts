/**
 * Who takes part in a round, from the available devices: a uniform random sample (crypto
 * randomness: devices must not be able to predict selection) of the target times the
 * over-selection factor, under per-round rules on who may be selected together. Pure but for the
 * random source, which tests replace.
 */
import { randomInt } from 'node:crypto';
import type { AvailableDevice } from '../devices/device-directory.js';
import { selectionSize, type RoundPolicy } from './round-policy.js';

/** What the selection rules look at. */
export type Candidate = Pick<AvailableDevice, 'clientId' | 'userKey'>;

/** An integer in [0, max): `crypto.randomInt` by default. */
export type RandomIndex = (max: number) => number;

export interface Selection {
  participants: string[];
  /** Candidates that could have been selected under the rules (what `minClients` is compared with). */
  selectable: number;
}

export function selectParticipants(candidates: readonly Candidate[], policy: RoundPolicy, random: RandomIndex = randomInt): Selection {
  const selectable = onePerUser(shuffled(candidates, random));
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

/** Fisher-Yates shuffle into a new array. */
function shuffled<T>(items: readonly T[], random: RandomIndex): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = random(i + 1);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool;
}
