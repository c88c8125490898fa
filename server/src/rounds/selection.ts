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
  const selectable = spreadOverAddresses(onePerUser(shuffled(candidates, random)), rules.maxPerAddress, random);
  const rate = policy.differentialPrivacy?.samplingRate;
  const chosen = rate === undefined ? selectable.slice(0, selectionSize(policy, selectable.length)) : poissonSample(selectable, rate, random);
  return { participants: chosen.map((candidate) => candidate.clientId), selectable: selectable.length };
}

/** Resolution of a Poisson draw: probabilities are rounded down to a multiple of 2^-32. */
const POISSON_RESOLUTION = 2 ** 32;

/**
 * Poisson sampling, what DP rounds' accounting assumes (docs/PRIVACY.md): each candidate is taken
 * independently with probability `rate` (at most `rate`: it is rounded down to 32 bits), so how many
 * are taken is itself random. The candidates are those left by the per-user and per-address rules,
 * which look only at who is connected, never at data.
 */
export function poissonSample<T>(candidates: readonly T[], rate: number, random: RandomIndex = randomInt): T[] {
  if (!(rate > 0 && rate <= 1)) throw new RangeError(`sampling rate must be in (0, 1], got ${rate}`);
  const threshold = Math.floor(rate * POISSON_RESOLUTION);
  // randomInt's range is below 2^48: two 16-bit halves make the 32-bit draw.
  const draw = () => random(65_536) * 65_536 + random(65_536);
  return rate === 1 ? [...candidates] : candidates.filter(() => draw() < threshold);
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
 * At most `max` devices per network address (0: no limit, the order kept), in passes: first one
 * device of every address (the first in the given order; the addresses in random order), then a
 * second of those that have one, and so on. Taking the head of the result, an address has the same
 * chance of a slot whatever number of identities it shows: many identities made up behind one
 * address (Sybils) get no more slots than one device, and never more than `max`.
 */
export function spreadOverAddresses<T extends Candidate>(candidates: readonly T[], max: number, random: RandomIndex = randomInt): T[] {
  if (max <= 0) return [...candidates];
  const byAddress = new Map<string, T[]>();
  for (const candidate of candidates) {
    const devices = byAddress.get(candidate.address);
    if (devices) devices.push(candidate);
    else byAddress.set(candidate.address, [candidate]);
  }
  // Addresses in random order, not in the order of their first device: that would favour addresses with many.
  const addresses = shuffled([...byAddress.values()], random);
  const spread: T[] = [];
  for (let pass = 0; pass < max; pass++) {
    for (const devices of addresses) if (pass < devices.length) spread.push(devices[pass]!);
  }
  return spread;
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
