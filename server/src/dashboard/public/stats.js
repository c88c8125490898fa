// @ts-check
/** The row of live counters at the top: clients, the global model, rounds. */
import { byId } from './dom.js';
import { ago, pct } from './format.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */

/** @param {DashboardState} state */
export function renderStats(state) {
  const { clients, models, rounds } = state;
  byId('s-connected').textContent = String(clients.connected);
  byId('s-eligible').textContent = String(clients.eligible);
  byId('s-eligible-sub').textContent = clients.connected ? `${pct(clients.eligible / clients.connected, 0)} of connected` : '';
  byId('s-inround').textContent = String(clients.inRound);
  const current = models[0];
  byId('s-version').textContent = current ? `v${current.version}` : '–';
  const accuracy = current?.metrics.testAccuracy;
  byId('s-version-sub').textContent = current
    ? `${current.source}${typeof accuracy === 'number' ? ` · test acc. ${pct(accuracy)}` : ''} · ${ago(current.createdAt)}`
    : '';
  const committed = rounds.filter((r) => r.status === 'committed').length;
  byId('s-rounds').textContent = String(rounds.length);
  byId('s-rounds-sub').textContent = rounds.length ? `${committed} committed · ${rounds.length - committed} not` : '';
  renderPrivacy(state);
}

/**
 * ε spent by the DP rounds so far (the ledger of the newest version), against the budget if one is set.
 * @param {DashboardState} state
 */
function renderPrivacy(state) {
  const ledger = state.models[0]?.privacy ?? null;
  const budget = state.privacy.budgetEpsilon;
  byId('s-privacy').textContent = ledger ? `ε ${ledger.epsilon.toFixed(2)}${budget === null ? '' : ` / ${budget}`}` : '–';
  byId('s-privacy-sub').textContent = ledger
    ? `${ledger.dpRounds} DP round${ledger.dpRounds === 1 ? '' : 's'} · δ ${ledger.delta} · v${state.models[0]?.version} ${ledger.protected ? 'covered' : 'not covered'}`
    : 'no privacy account';
}
