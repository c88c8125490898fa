import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/datasets/seeded-random.js';
import type { RoundPolicy } from '../../src/rounds/round-policy.js';
import { onePerUser, selectParticipants, spreadOverAddresses, type Candidate } from '../../src/rounds/selection.js';

const policy: RoundPolicy = { minClients: 2, targetClients: 3, overSelection: 1, selectionTimeoutMs: 1000, deadlineMs: 1000 };

/** A reproducible random index source over the project's seeded PRNG. */
function seeded(seed: number): (max: number) => number {
  const random = mulberry32(seed);
  return (max) => Math.floor(random() * max);
}

const device = (clientId: string, userKey: string | null = null, address = `10.0.0.${clientId}`): Candidate => ({ clientId, userKey, address });
const unlimited = { maxPerAddress: 0 };

describe('selection', () => {
  it('keeps one device per enrolled user, in the given order, and does not limit devices without a user', () => {
    const candidates = [device('a1', 'alice'), device('x'), device('a2', 'alice'), device('b1', 'bob'), device('y'), device('b2', 'bob')];
    expect(onePerUser(candidates).map((c) => c.clientId)).toEqual(['a1', 'x', 'b1', 'y']);
  });

  it('never selects two devices of one user in a round, whatever the draw, and counts users as what can be selected', () => {
    // Alice has five devices; Bob and Carol one each: at most three can be selected together.
    const candidates = [...['a1', 'a2', 'a3', 'a4', 'a5'].map((id) => device(id, 'alice')), device('b', 'bob'), device('c', 'carol')];
    const alicePicks = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const { participants, selectable } = selectParticipants(candidates, { ...policy, targetClients: 10 }, unlimited, seeded(seed));
      expect(selectable).toBe(3);
      expect(participants).toHaveLength(3);
      const alice = participants.filter((id) => id.startsWith('a'));
      expect(alice).toHaveLength(1);
      alicePicks.add(alice[0]!);
      expect(participants).toEqual(expect.arrayContaining(['b', 'c']));
    }
    // Which of Alice's devices is random.
    expect(alicePicks.size).toBe(5);
  });

  it('samples the target times over-selection uniformly when users do not limit it', () => {
    const candidates = Array.from({ length: 10 }, (_, i) => device(`d${i}`));
    const counts = new Map<string, number>();
    const draws = 2000;
    for (let seed = 1; seed <= draws; seed++) {
      const { participants, selectable } = selectParticipants(candidates, policy, unlimited, seeded(seed));
      expect(selectable).toBe(10);
      expect(new Set(participants).size).toBe(3);
      for (const id of participants) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // Each device is picked 3/10 of the time (600 of 2000); allow a wide margin for the seeded draws.
    for (const id of candidates.map((c) => c.clientId)) expect(counts.get(id)).toBeGreaterThan(500);
    for (const id of candidates.map((c) => c.clientId)) expect(counts.get(id)).toBeLessThan(700);
  });

  it('keeps at most the given number of devices per address, one of each address first; 0 means no limit and keeps the order', () => {
    const candidates = [
      device('s1', null, 'sybil'),
      device('h1', null, 'a'),
      device('s2', null, 'sybil'),
      device('s3', null, 'sybil'),
      device('h2', null, 'b'),
    ];
    // Addresses in the order the random source gives (here: as they come), one device each per pass.
    const inOrder = (max: number): number => max - 1;
    expect(spreadOverAddresses(candidates, 2, inOrder).map((c) => c.clientId)).toEqual(['s1', 'h1', 'h2', 's2']);
    expect(spreadOverAddresses(candidates, 1, inOrder).map((c) => c.clientId)).toEqual(['s1', 'h1', 'h2']);
    expect(spreadOverAddresses(candidates, 0, inOrder).map((c) => c.clientId)).toEqual(['s1', 'h1', 's2', 's3', 'h2']);
  });

  it('gives an address of 20 identities the chance of one device when there are more addresses than slots', () => {
    // 80 honest devices on their own addresses, 20 Sybils on one; 10 slots.
    const candidates = [...Array.from({ length: 80 }, (_, i) => device(`h${i}`)), ...Array.from({ length: 20 }, (_, i) => device(`s${i}`, null, 'sybil'))];
    let sybilSlots = 0;
    const draws = 2000;
    for (let seed = 1; seed <= draws; seed++) {
      const { participants } = selectParticipants(candidates, { ...policy, targetClients: 10 }, { maxPerAddress: 2 }, seeded(seed));
      const sybils = participants.filter((id) => id.startsWith('s')).length;
      expect(sybils).toBeLessThanOrEqual(1);
      sybilSlots += sybils;
    }
    // One address of 81: 10/81 of a slot per round on average (about 247 in 2000 rounds), not the 2 its identities would draw.
    expect(sybilSlots).toBeGreaterThan(180);
    expect(sybilSlots).toBeLessThan(320);
  });

  it('gives 50 identities behind one address at most the per-address cap of the slots, whatever the draw, composed with one device per user', () => {
    const sybils = Array.from({ length: 50 }, (_, i) => device(`s${i}`, null, '127.0.0.66'));
    // Two honest devices of one enrolled user on one address, and three others each on its own.
    const honest = [device('h1', 'hal', 'home'), device('h2', 'hal', 'home'), device('h3'), device('h4'), device('h5')];
    const sybilPicks = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const { participants, selectable } = selectParticipants([...sybils, ...honest], { ...policy, targetClients: 13 }, { maxPerAddress: 2 }, seeded(seed));
      expect(selectable).toBe(2 + 4);
      expect(participants.filter((id) => id.startsWith('s'))).toHaveLength(2);
      expect(participants.filter((id) => id === 'h1' || id === 'h2')).toHaveLength(1);
      expect(participants).toEqual(expect.arrayContaining(['h3', 'h4', 'h5']));
      for (const id of participants.filter((id) => id.startsWith('s'))) sybilPicks.add(id);
    }
    // Which identities of the address get the slots is random.
    expect(sybilPicks.size).toBeGreaterThan(40);
  });
});
