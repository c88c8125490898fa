// @ts-check
/** The "Start a round" form: the strategies the coordinator offers, checks, and the POST. */
import { api, errorMessage, reportFailure } from './api.js';
import { byId, el, flash } from './dom.js';
import { shortId } from './format.js';
import { latestState } from './latest.js';

/** @typedef {import('../dashboard-state.js').DashboardState} DashboardState */
/** @typedef {import('../dashboard-state.js').DashboardRound} DashboardRound */

/** The strategy names the select shows, joined: it is rebuilt only when they change. */
let strategiesShown = '';
/** The round whose settings the form shows (null: the page's defaults). */
let settingsFrom = /** @type {string | null} */ (null);
/** True once the operator has edited the form since it was last filled: a new round's settings then leave it alone. */
let edited = false;

export function initStartForm() {
  byId('start-form').addEventListener('submit', (event) => {
    startRound(/** @type {SubmitEvent} */ (event)).catch(reportFailure);
  });
  byId('strategy').addEventListener('change', renderStrategyHint);
  byId('start-form').addEventListener('input', () => {
    edited = true;
  });
}

/** @param {DashboardState} state */
export function renderForm(state) {
  const select = /** @type {HTMLSelectElement} */ (byId('strategy'));
  const names = state.strategies.map((s) => s.name);
  const key = names.join(',');
  if (key !== strategiesShown) {
    const chosen = select.value || state.defaultStrategy;
    select.replaceChildren(...names.map((name) => el('option', {}, name)));
    select.value = names.includes(chosen) ? chosen : state.defaultStrategy;
    strategiesShown = key;
    renderStrategyHint();
  }
  const newest = state.rounds[0];
  if (newest && newest.id !== settingsFrom && !edited) {
    fillFrom(newest);
    settingsFrom = newest.id;
  }
  const button = /** @type {HTMLButtonElement} */ (byId('start-btn'));
  button.disabled = state.activeRound !== null;
  button.title = state.activeRound ? 'One round at a time: wait for the round in flight to end' : '';
}

/**
 * The form's initial values: the settings of the newest round, so that the next round repeats them
 * unless the operator changes something.
 * @param {DashboardRound} round
 */
function fillFrom(round) {
  const { params } = round;
  const form = /** @type {HTMLFormElement} */ (byId('start-form'));
  /** @type {Record<string, string>} */
  const values = {
    minClients: String(params.minClients),
    targetClients: String(params.targetClients),
    deadlineSeconds: String(Math.max(1, Math.round(params.deadlineMs / 1000))),
    epochs: String(params.plan.epochs),
    batchSize: String(params.plan.batchSize),
    learningRate: String(params.plan.learningRate),
    overSelection: String(params.overSelection),
    strategyOptions: Object.keys(params.strategyOptions).length > 0 ? JSON.stringify(params.strategyOptions) : '',
  };
  const dp = params.differentialPrivacy;
  if (dp) Object.assign(values, { dpNoiseMultiplier: String(dp.noiseMultiplier), dpClipNorm: String(dp.clipNorm), dpSamplingRate: String(dp.samplingRate) });
  /** @type {HTMLInputElement} */ (byId('dp')).checked = dp !== null;
  for (const [name, value] of Object.entries(values)) {
    const input = form.elements.namedItem(name);
    if (input instanceof HTMLInputElement) input.value = value;
  }
  /** @type {HTMLInputElement} */ (byId('secure-aggregation')).checked = Boolean(params.secureAggregation);
  const select = /** @type {HTMLSelectElement} */ (byId('strategy'));
  if ([...select.options].some((option) => option.value === params.strategy)) select.value = params.strategy;
  renderStrategyHint();
}

/** What the chosen strategy does and accepts; its defaults as the options field's placeholder. */
function renderStrategyHint() {
  const name = /** @type {HTMLSelectElement} */ (byId('strategy')).value;
  const strategy = latestState()?.strategies.find((s) => s.name === name);
  const input = /** @type {HTMLInputElement} */ (byId('strategy-options'));
  input.placeholder = strategy && Object.keys(strategy.defaults).length > 0 ? JSON.stringify(strategy.defaults) : '{}';
  byId('strategy-hint').textContent = strategy ? `${strategy.summary} Options: ${strategy.options.join(', ')}.` : '';
}

/** @param {SubmitEvent} event */
async function startRound(event) {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.currentTarget);
  const message = byId('start-msg');
  const data = new FormData(form);
  /** @param {string} name */
  const num = (name) => Number(data.get(name));
  const body = {
    minClients: num('minClients'),
    targetClients: num('targetClients'),
    deadlineSeconds: num('deadlineSeconds'),
    epochs: num('epochs'),
    batchSize: num('batchSize'),
    learningRate: num('learningRate'),
    overSelection: num('overSelection'),
    strategy: formText(data, 'strategy'),
  };
  if (Object.values(body).some((v) => typeof v === 'number' && !(v > 0))) {
    flash(message, 'Every number must be positive.', 'error');
    return;
  }
  const optionsText = formText(data, 'strategyOptions').trim();
  if (optionsText !== '') {
    const options = parseObject(optionsText);
    if (!options) {
      flash(message, 'Strategy options must be a JSON object, e.g. {"serverLearningRate": 0.01}.', 'error');
      return;
    }
    Object.assign(body, { strategyOptions: options });
  }
  const secure = data.get('secureAggregation') === 'on';
  if (data.get('dp') !== null) {
    // With secure aggregation the coordinator sees only the sum, so the devices add the noise.
    const differentialPrivacy = {
      noiseMultiplier: num('dpNoiseMultiplier'),
      clipNorm: num('dpClipNorm'),
      samplingRate: num('dpSamplingRate'),
      noise: secure ? 'distributed' : 'central',
    };
    if (!(
      differentialPrivacy.noiseMultiplier > 0 &&
      differentialPrivacy.clipNorm > 0 &&
      differentialPrivacy.samplingRate > 0 &&
      differentialPrivacy.samplingRate <= 1
    )) {
      flash(message, 'Differential privacy needs a positive noise multiplier and clip norm, and a sampling rate in (0, 1].', 'error');
      return;
    }
    Object.assign(body, { differentialPrivacy });
  }
  // A checkbox: the round is secure (its settings at the coordinator's defaults, but the chosen key agreement) or plain.
  if (secure) {
    const keyAgreement = data.get('secureAggregationKeyAgreement');
    Object.assign(body, { secureAggregation: keyAgreement === 'X25519' ? { keyAgreement } : true });
  }
  if (body.targetClients < body.minClients) {
    flash(message, 'Target clients must be at least min clients.', 'error');
    return;
  }
  const button = /** @type {HTMLButtonElement} */ (byId('start-btn'));
  button.disabled = true;
  flash(message, 'Starting…', '');
  try {
    const { ok, body: response } = await api('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
    if (ok) {
      flash(message, `Round ${shortId(/** @type {{ id: string }} */ (response).id)} started`, 'ok');
      edited = false; // the new round carries these settings: later rounds' settings may fill the form again
    } else flash(message, errorMessage(response), 'error');
  } catch (error) {
    flash(message, String(error), 'error');
  } finally {
    button.disabled = latestState()?.activeRound != null;
  }
}

/**
 * The text as a JSON object, or null if it is not one.
 * @param {string} text
 * @returns {object | null}
 */
function parseObject(text) {
  try {
    /** @type {unknown} */
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * A text field of the form ('' when missing).
 * @param {FormData} data
 * @param {string} name
 */
function formText(data, name) {
  const value = data.get(name);
  return typeof value === 'string' ? value : '';
}
