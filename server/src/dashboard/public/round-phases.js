// @ts-check
/**
 * Round statuses as the page shows them, from the protocol's one list (client-sdk's round-status
 * module, served as is and resolved through the page's import map).
 */
import { isRoundFinished, ROUND_STATUSES } from '@flock/client-sdk/protocol/round-status';

/** @typedef {import('@flock/client-sdk/protocol/round-status').RoundStatus} RoundStatus */

/**
 * The round panel's strip: the statuses in flight, then the good ending.
 * @type {readonly string[]}
 */
export const PHASES = ROUND_STATUSES.filter((status) => status === 'committed' || !isRoundFinished(status));

/**
 * True once the round has ended (committed, failed or aborted).
 * @param {{ status: string }} round a snapshot's round: its status is one of the protocol's, sent as a string
 */
export function isFinished(round) {
  return isRoundFinished(/** @type {RoundStatus} */ (round.status));
}
