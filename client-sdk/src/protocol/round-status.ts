/**
 * Round statuses, shared by the wire protocol (`round:closed` outcomes), the REST API, the CLI, the
 * simulator and the dashboard: one list, so "finished" means the same thing everywhere.
 *
 *   selecting -> configuring -> reporting -> committing -> committed
 *   any non-terminal status -> failed  (quorum missed, or a commit error)
 *   any non-terminal status -> aborted (operator cancel, or coordinator restart)
 */

/** How a round ends: the terminal statuses. */
export const ROUND_OUTCOMES = ['committed', 'failed', 'aborted'] as const;
export type RoundOutcome = (typeof ROUND_OUTCOMES)[number];

export const ROUND_STATUSES = ['selecting', 'configuring', 'reporting', 'committing', ...ROUND_OUTCOMES] as const;
export type RoundStatus = (typeof ROUND_STATUSES)[number];

/** True once a round has ended (committed, failed or aborted). */
export function isRoundFinished(status: RoundStatus): status is RoundOutcome {
  return (ROUND_OUTCOMES as readonly string[]).includes(status);
}
