// @ts-check
/** The "Recent rounds" table, newest first, numbered as on the charts' x axis. */
import { byId, el } from './dom.js';
import { ago, total } from './format.js';
import { isFinished } from './round-phases.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */

/** @param {DashboardState} state */
export function renderRounds(state) {
  const n = state.rounds.length;
  if (!n) {
    const cell = el('td', { className: 'empty' }, 'No rounds yet: start one with the form above.');
    cell.colSpan = 7;
    byId('rounds').replaceChildren(el('tr', {}, cell));
    return;
  }
  byId('rounds').replaceChildren(
    ...state.rounds.map((round, i) => {
      const m = round.metrics;
      return el(
        'tr',
        {},
        el('td', { className: 'mono', title: round.id }, `#${n - i}`),
        el('td', {}, el('span', { className: `badge ${isFinished(round) ? round.status : 'live'}`, title: round.error ?? '' }, round.status)),
        el('td', { className: 'num' }, m.accepted),
        el('td', { className: 'num' }, total(m.rejected)),
        el('td', { className: 'num' }, total(m.dropped)),
        el('td', {}, round.committedVersion ? `v${round.committedVersion}` : '–'),
        el('td', { title: round.createdAt }, ago(round.createdAt)),
      );
    }),
  );
}
