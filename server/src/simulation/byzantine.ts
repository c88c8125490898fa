/**
 * Byzantine (malicious) simulated clients: they take part in rounds like honest devices and send
 * protocol-valid uploads (right shapes, finite values, honest example counts), but poisoned ones.
 *
 * - `noise`: the delta is replaced by Gaussian noise, N(0, NOISE_STD^2) per coordinate (for the 2NN
 *   an L2 norm of about 450, against 1-5 for honest deltas);
 * - `sign-flip`: the honest delta scaled by -SIGN_FLIP_SCALE (the "sign-flipping attack" of the
 *   Byzantine-robustness literature, e.g. Li et al. 2019 "RSA", Karimireddy et al. 2022);
 * - `label-flip`: honest training on poisoned data, every label y replaced by (classes - 1 - y);
 * - `scaling`: model replacement (Bagdasaryan et al. 2020): the honest delta scaled by -SCALING_BOOST
 *   and the largest example count the wire allows, so that the average follows it;
 * - `sybil`: many identities behind one network address (SYBIL_ADDRESS), each sending the honest
 *   delta scaled by -SIGN_FLIP_SCALE: many slots of a round for one attacker.
 *
 * The last two are what the coordinator's bounded-influence defaults are for (docs/SECURITY.md);
 * `mixed` keeps to the first three.
 */
import { MAX_UPDATE_EXAMPLES } from '@flock/client-sdk/protocol';
import { mulberry32 } from '../datasets/seeded-random.js';
import { hashInts, shuffleInPlace } from './partition.js';

export const ATTACKS = ['noise', 'sign-flip', 'label-flip', 'scaling', 'sybil'] as const;
export type Attack = (typeof ATTACKS)[number];
/** What `mixed` takes in turn. */
export const MIXED_ATTACKS: readonly Attack[] = ['noise', 'sign-flip', 'label-flip'];
/** `mixed`: the Byzantine clients take the attacks in turn. */
export type AttackChoice = Attack | 'mixed';
export const ATTACK_CHOICES: readonly AttackChoice[] = [...ATTACKS, 'mixed'];

export const NOISE_STD = 1;
export const SIGN_FLIP_SCALE = 4;
export const SCALING_BOOST = 10;
/** The one source address every `sybil` identity connects from (the honest simulated devices each have their own). */
export const SYBIL_ADDRESS = '127.0.0.66';

/**
 * Which clients are Byzantine and how: exactly round(fraction * clients) of them, chosen by a seeded
 * shuffle (so the same seed poisons the same clients); null for honest clients.
 */
export function assignAttacks(clients: number, fraction: number, choice: AttackChoice, seed: number): (Attack | null)[] {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`the Byzantine fraction must be in [0, 1), got ${fraction}`);
  const attacks: (Attack | null)[] = new Array<Attack | null>(clients).fill(null);
  const count = Math.round(fraction * clients);
  const order = shuffleInPlace(
    Int32Array.from({ length: clients }, (_, i) => i),
    mulberry32(hashInts(seed, 0xb12)),
  );
  for (let i = 0; i < count; i++) attacks[order[i]!] = choice === 'mixed' ? MIXED_ATTACKS[i % MIXED_ATTACKS.length]! : choice;
  return attacks;
}

/** Label flipping, in place: y -> classes - 1 - y. */
export function flipLabels(labels: Uint8Array, classes = 10): Uint8Array {
  for (let i = 0; i < labels.length; i++) labels[i] = classes - 1 - labels[i]!;
  return labels;
}

/** The delta a Byzantine client sends instead of its honest one (label-flip sends the honest one). */
export function poisonDelta(attack: Attack, delta: readonly Float32Array[], random: () => number): Float32Array[] {
  switch (attack) {
    case 'noise':
      return delta.map((tensor) => {
        const noise = new Float32Array(tensor.length);
        for (let j = 0; j < noise.length; j++) noise[j] = NOISE_STD * gaussian(random);
        return noise;
      });
    case 'sign-flip':
    case 'sybil':
      return delta.map((tensor) => tensor.map((value) => -SIGN_FLIP_SCALE * value));
    case 'scaling':
      return delta.map((tensor) => tensor.map((value) => -SCALING_BOOST * value));
    case 'label-flip':
      return [...delta];
  }
}

/** A standard normal draw (Box-Muller). */
function gaussian(random: () => number): number {
  const u = 1 - random(); // (0, 1]: log(0) never happens
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** The example count a Byzantine client claims in its upload; null: its true count. */
export function claimedExamples(attack: Attack | null): number | null {
  return attack === 'scaling' ? MAX_UPDATE_EXAMPLES : null;
}

/**
 * The loopback source address a simulated device connects from (Linux routes all of 127.0.0.0/8 to
 * the loopback interface): one per honest device, so that the coordinator sees distinct addresses as
 * it would from real phones; the same one for every Sybil.
 */
export function sourceAddress(index: number, attack: Attack | null): string {
  if (attack === 'sybil') return SYBIL_ADDRESS;
  return `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}`;
}
