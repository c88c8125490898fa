/** Everything the page shows, drawn from the state (and the examples, the prediction, the activity log). */
import type { ConditionValue, EvaluationReport } from '@flock/client-sdk';
import { MIN_EXAMPLES } from './config.js';
import type { DemoState } from './demo-state.js';
import { paintDigit } from './digit-pad.js';
import { byId, el } from './dom.js';
import { toUnitPixels, type LabelledExample } from './example-store.js';

const STATUS_TEXT: Record<DemoState['status'], string> = {
  idle: 'not started',
  connecting: 'connecting',
  waiting: 'waiting for a round',
  training: 'training',
  uploading: 'uploading update',
  evaluating: 'testing a new model',
  offline: 'offline',
  stopped: 'stopped',
  'no data': `add ${MIN_EXAMPLES} examples to join`,
};

/** Entries the activity log keeps. */
const LOG_LENGTH = 40;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

function percent(value: number | null): string {
  return value === null ? '–' : `${(100 * value).toFixed(1)} %`;
}

/** Adds a line at the top of the activity log. */
export function log(message: string, kind: 'info' | 'good' | 'warn' = 'info'): void {
  const list = byId<HTMLOListElement>('log');
  const time = el('time', '', new Date().toLocaleTimeString([], { hour12: false }));
  list.prepend(el('li', kind, time, message));
  while (list.children.length > LOG_LENGTH) list.lastElementChild?.remove();
}

export function render(state: DemoState): void {
  byId('status').textContent = STATUS_TEXT[state.status];
  byId('status-pill').className = `status-pill ${state.status.replace(' ', '-')}`;
  byId('status-pill').dataset.status = state.status;
  renderCondition('cond-idle', state.conditions.idle);
  renderCondition('cond-charging', state.conditions.charging);
  renderCondition('cond-network', state.conditions.unmetered);
  const missing = [
    state.conditions.idle !== 'yes' ? 'idle' : null,
    state.conditions.charging !== 'yes' ? 'charging' : null,
    state.conditions.unmetered !== 'yes' ? 'on Wi-Fi' : null,
  ].filter((name): name is string => name !== null);
  // Without enough examples the device does not join at all, whatever its conditions (the header says so too).
  const examplesNeeded = Math.max(0, MIN_EXAMPLES - state.exampleCount);
  const canBePicked = state.eligible && examplesNeeded === 0;
  byId('eligibility').textContent = canBePicked
    ? 'Eligible: this device may be picked for training.'
    : examplesNeeded > 0
      ? `Not eligible yet: add ${examplesNeeded} example${examplesNeeded === 1 ? '' : 's'} (draw and label digits, or seed MNIST) to join training.`
      : `Not eligible: training waits until the device is ${missing.length ? missing.join(', ') : 'ready'}.`;
  byId('eligibility').className = `eligibility ${canBePicked ? 'yes' : 'no'}`;
  byId('global-version').textContent = state.globalVersion === null ? '–' : `v${state.globalVersion}`;
  const personal = byId('personal-version');
  if (state.personalVersion === null) personal.textContent = 'none yet';
  else {
    personal.textContent = `v${state.personalVersion} + local`;
    const fineTuned =
      state.fineTunedEpochs > 0 ? `fine-tuned ${state.fineTunedEpochs} epoch${state.fineTunedEpochs === 1 ? '' : 's'} on this device` : 'as received';
    personal.append(el('small', '', fineTuned));
  }
  byId('backend').textContent = state.backend ?? '–';
  byId('rounds-trained').textContent = `${state.roundsTrained}${state.roundsAbandoned ? ` (${state.roundsAbandoned} abandoned)` : ''}`;
  byId('bytes-uploaded').textContent = formatBytes(state.bytesUploaded);
  byId('bytes-uploaded').dataset.bytes = String(state.bytesUploaded);
  byId('example-count').textContent = String(state.exampleCount);
  byId('drawn-count').textContent = String(state.drawnCount);
  renderEvaluation(state.lastEvaluation);
}

function renderCondition(id: string, value: ConditionValue): void {
  const element = byId(id);
  element.textContent = value;
  element.className = `chip ${value}`;
}

/** The latest local test of a new global model against the personal one. */
function renderEvaluation(report: EvaluationReport | null): void {
  const container = byId('evaluation');
  if (!report) {
    container.className = 'evaluation empty';
    container.textContent = 'No global model tested yet.';
    return;
  }
  container.className = 'evaluation';
  container.dataset.version = String(report.modelVersion);
  const personalBetter = report.personalAccuracy !== null && report.personalAccuracy > report.globalAccuracy;
  container.replaceChildren(
    el('p', 'eval-head', `Global v${report.modelVersion} on ${report.numExamples} held-out local examples`),
    evaluationRow(`Global v${report.modelVersion}`, report.globalAccuracy, !personalBetter),
    evaluationRow('Personal', report.personalAccuracy, personalBetter),
    el(
      'p',
      `eval-verdict ${report.adopted ? 'adopted' : 'kept'}`,
      report.adopted ? 'Adopted (its shared part) and trained on this device' : 'Kept the personal model',
    ),
  );
}

function evaluationRow(name: string, accuracy: number | null, highlight: boolean): HTMLElement {
  return el(
    'div',
    `eval-row${highlight ? ' best' : ''}`,
    el('span', '', name),
    bar('eval-bar', accuracy === null ? 0 : (100 * accuracy).toFixed(1)),
    el('b', '', percent(accuracy)),
  );
}

/** A bar filled to `width` percent. */
function bar(className: string, width: number | string): HTMLElement {
  const fill = el('div', '');
  fill.style.width = `${width}%`;
  return el('div', className, fill);
}

/** The model's answer for the pad: a bar per digit and the best guess (null: nothing drawn). */
export function renderBars(probabilities: ArrayLike<number> | null): void {
  let best = -1;
  if (probabilities) for (let d = 0; d < 10; d++) if (best < 0 || probabilities[d]! > probabilities[best]!) best = d;
  byId<HTMLOListElement>('bars').replaceChildren(
    ...Array.from({ length: 10 }, (_, digit) => {
      const value = probabilities ? probabilities[digit]! : 0;
      return el('li', digit === best ? 'best' : '', el('span', '', String(digit)), bar('bar', (100 * value).toFixed(1)));
    }),
  );
  byId('guess').textContent = best >= 0 ? String(best) : '?';
  byId('guess').classList.toggle('empty', best < 0);
  byId('guess-confidence').textContent = best >= 0 && probabilities ? `${(100 * probabilities[best]!).toFixed(0)} % sure` : '';
}

/** The newest 32 stored examples, newest first. */
export function renderThumbnails(examples: readonly LabelledExample[]): void {
  byId('thumbs').replaceChildren(
    ...examples
      .slice(-32)
      .reverse()
      .map((example) => {
        const canvas = document.createElement('canvas');
        paintDigit(canvas, toUnitPixels(example.pixels));
        return el('figure', '', canvas, el('figcaption', '', String(example.label)));
      }),
  );
}

/** Training progress, 0 to 1; `purpose` tells federated training from fine-tuning apart (its colour). */
export function renderTrainingProgress(fraction: number, purpose?: string): void {
  const progress = byId('train-progress');
  progress.style.width = `${(100 * fraction).toFixed(0)}%`;
  if (purpose !== undefined) progress.className = purpose;
}

export function showServerUrl(url: string): void {
  byId('server-url').textContent = url;
}

export function showClientId(id: string): void {
  byId('client-id').textContent = id.slice(0, 8);
}
