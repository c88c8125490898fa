/**
 * The last check before a round's aggregate becomes a global version: every new weight is finite
 * and the change from the base version is bounded. Updates are checked one by one at intake; this
 * checks what they add up to (float32 overflow of a sum of finite updates, a server optimizer gone
 * wrong). Pure.
 */
import type { CommitRefusalReason } from '@flock/client-sdk/protocol';
import { firstNonFinite } from '../aggregation/vector-math.js';

export interface CommitRefusal {
  reason: CommitRefusalReason;
  message: string;
}

/** Null when `next` may be committed over `base`; otherwise why not. `maxChange`: the most L2 norm of next - base. */
export function checkCommit(base: Float32Array, next: Float32Array, maxChange: number): CommitRefusal | null {
  if (next.length !== base.length) throw new RangeError(`the aggregate has ${next.length} weights; the base version has ${base.length}`);
  const bad = firstNonFinite(next);
  if (bad >= 0) return { reason: 'non_finite_weights', message: `new weight ${bad} would be ${next[bad]}` };
  let squares = 0;
  for (let i = 0; i < next.length; i++) {
    const change = next[i]! - base[i]!;
    squares += change * change;
  }
  const change = Math.sqrt(squares);
  if (!(change <= maxChange)) {
    return { reason: 'update_too_large', message: `the change from the base version has L2 norm ${change.toPrecision(4)}; the limit is ${maxChange}` };
  }
  return null;
}

/** The text a round fails with when its commit is refused: the stable reason first. */
export function commitRefusalMessage({ reason, message }: CommitRefusal): string {
  return `commit refused (${reason}): ${message}; the global model stays as it was`;
}
