// @ts-check
/** The last snapshot the coordinator pushed, and when it arrived: the round's countdown runs from it. */

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */

/** @type {DashboardState | null} */
let latest = null;
/** Date.now() when `latest` arrived. */
let receivedAt = 0;

/** @param {DashboardState | null} state null once signed out */
export function setLatest(state) {
  latest = state;
  if (state) receivedAt = Date.now();
}

export function latestState() {
  return latest;
}

/** Milliseconds since the latest snapshot arrived. */
export function sinceLatestMs() {
  return Date.now() - receivedAt;
}
