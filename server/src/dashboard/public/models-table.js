// @ts-check
/** The "Model versions" table and its rollback buttons. */
import { api, errorMessage, reportFailure } from './api.js';
import { byId, el, flash } from './dom.js';
import { ago, pct, shortId } from './format.js';
import { describeLocalEvaluation } from './local-evaluation.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */

/** @param {DashboardState} state */
export function renderModels(state) {
  // Rounds are numbered as in the rounds table and the charts' x axis (#1 = oldest shown).
  /** @type {Map<string, number>} */
  const roundNumber = new Map(state.rounds.map((round, i) => [round.id, state.rounds.length - i]));
  /** Devices' local tests of each committed version, from the round that committed it. */
  const localEvaluation = new Map(
    state.rounds.flatMap((round) => (round.committedVersion === null ? [] : [[round.committedVersion, round.metrics.localEvaluation]])),
  );
  const rows = state.models.map((model, i) => {
    const accuracy = model.metrics.testAccuracy;
    const clients = model.metrics.clients;
    const actions = el('td', { className: 'num' });
    if (i > 0) {
      const button = el('button', { className: 'small-btn', title: `Make v${model.version}'s weights current again (creates a new version)` }, 'Roll back');
      button.type = 'button';
      button.addEventListener('click', () => {
        rollback(model.version, button).catch(reportFailure);
      });
      actions.append(button);
    } else {
      actions.append(el('span', { className: 'badge current' }, 'current'));
    }
    const evaluation = localEvaluation.get(model.version);
    const tested = evaluation ? describeLocalEvaluation(evaluation) : null;
    const source = model.source === 'rollback' && model.parentVersion !== null ? `rollback of v${model.metrics.rolledBackFrom ?? '?'}` : model.source;
    return el(
      'tr',
      { className: i === 0 ? 'current' : '' },
      el('td', {}, el('strong', {}, `v${model.version}`)),
      el('td', {}, el('span', { className: 'badge' }, source)),
      el('td', { className: 'mono', title: model.roundId ?? '' }, model.roundId ? roundLabel(model.roundId, roundNumber) : '–'),
      el('td', { className: 'num' }, typeof accuracy === 'number' ? pct(accuracy) : '–'),
      el('td', { className: 'num local-eval', title: tested?.title ?? 'No device has reported a local test of this version' }, tested?.cell ?? '–'),
      el('td', { className: 'num' }, typeof clients === 'number' ? clients : '–'),
      el('td', { title: model.createdAt }, ago(model.createdAt)),
      actions,
    );
  });
  byId('models').replaceChildren(...rows);
}

/**
 * @param {string} roundId
 * @param {Map<string, number>} numbers
 */
function roundLabel(roundId, numbers) {
  const n = numbers.get(roundId);
  return n === undefined ? shortId(roundId) : `#${n} · ${shortId(roundId)}`;
}

/**
 * @param {number} version
 * @param {HTMLButtonElement} button
 */
async function rollback(version, button) {
  const message = byId('m-msg');
  if (!confirm(`Roll back to v${version}? Its weights become a new current version; history is kept.`)) return;
  button.disabled = true;
  try {
    const { ok, body } = await api(`/api/models/${version}/rollback`, { method: 'POST' });
    if (ok) {
      const created = /** @type {{ version?: number }} */ (body).version;
      flash(message, `v${created} created from v${version}`, 'ok');
    } else {
      flash(message, errorMessage(body), 'error');
    }
  } catch (error) {
    flash(message, String(error), 'error');
  } finally {
    button.disabled = false;
  }
}
