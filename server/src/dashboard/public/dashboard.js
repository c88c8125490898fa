// @ts-check
/**
 * Flock operator dashboard: the page's entry module. Plain ES modules with JSDoc, no build step:
 * served as they are from /dashboard/assets/, bare imports resolved by the page's import map, and
 * type-checked with `tsc -p src/dashboard/public/tsconfig.json` against ../dashboard-state.ts.
 * Each module has one part of the page; this one draws a snapshot with all of them.
 */
import { observeChartSizes, renderCharts } from './charts.js';
import { byId } from './dom.js';
import { latestState } from './latest.js';
import { renderModels } from './models-table.js';
import { initRoundPanel, renderRound } from './round-panel.js';
import { initRoundsExport } from './rounds-csv.js';
import { renderRounds } from './rounds-table.js';
import { initServingPanel } from './serving-panel.js';
import { startSession } from './session.js';
import { initStartForm, renderForm } from './start-form.js';
import { renderStats } from './stats.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */

/** @param {DashboardState} state */
function render(state) {
  renderStats(state);
  renderRound(state);
  renderForm(state);
  renderCharts(state);
  renderModels(state);
  renderRounds(state);
  byId('updated').textContent = `updated ${new Date(state.serverTime).toLocaleTimeString()}`;
}

initStartForm();
initRoundPanel();
initRoundsExport();
observeChartSizes();
initServingPanel();
// Relative times ("2 min ago") age between snapshots.
setInterval(() => {
  const state = latestState();
  if (state) {
    renderModels(state);
    renderRounds(state);
  }
}, 30_000);
startSession(render);
