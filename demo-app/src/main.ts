/**
 * Flock demo app: a handwritten-digit pad embedding @flock/client-sdk the way an app would. The
 * user's labelled drawings (or a seeded slice of MNIST) stay in IndexedDB on the device; the SDK
 * trains the global model on them when the coordinator selects this device, tests every new
 * global model against the personalized one, and predicts offline as the user draws.
 *
 * URL parameters: server, token (defaults: VITE_FLOCK_SERVER, VITE_FLOCK_CLIENT_TOKEN), seed
 * (which MNIST window "Seed with MNIST" loads), idleAfterMs (page inactivity that counts as idle,
 * default 60 s), unknown=eligible|ineligible (what an unknown condition means; by default only an
 * unknown network type counts as eligible, since desktop browsers do not report it).
 */
import * as tf from '@tensorflow/tfjs';
import { ArrayDataSource, FederatedClient, type ConditionValue, type UnknownConditionPolicy } from '@flock/client-sdk';
import { browserConditions, IndexedDbModelStore, initBrowserBackend } from '@flock/client-sdk/browser';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmPlainUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
// Never loaded (threads are off), but tfjs's setWasmPaths refuses a map that lacks any of the three.
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import type { DemoHooks, DemoState } from './demo-state.js';
import { DigitPad, paintDigit } from './digit-pad.js';
import { ExampleStore, toBytePixels, toUnitPixels, type LabelledExample } from './example-store.js';
import { loadMnistSlice, mnistTestImage, mnistWindow, type MnistSlice } from './mnist-slice.js';

/** Examples the device needs before it joins federated training (some are held out for tests). */
const MIN_EXAMPLES = 10;
/** How many MNIST examples "Seed with MNIST" adds. */
const SEED_EXAMPLES = 400;

interface DemoConfig {
  serverUrl: string;
  clientToken: string;
  seed: number;
  idleAfterMs: number;
  unknownConditions: UnknownConditionPolicy;
}

function readConfig(): DemoConfig {
  const params = new URLSearchParams(location.search);
  const unknown = params.get('unknown');
  const idleAfterMs = Number(params.get('idleAfterMs') ?? 60_000);
  return {
    serverUrl: params.get('server') ?? import.meta.env.VITE_FLOCK_SERVER ?? 'http://localhost:8080',
    clientToken: params.get('token') ?? import.meta.env.VITE_FLOCK_CLIENT_TOKEN ?? '',
    seed: Math.max(0, Math.floor(Number(params.get('seed') ?? 0)) || 0),
    idleAfterMs: Number.isFinite(idleAfterMs) && idleAfterMs >= 0 ? idleAfterMs : 60_000,
    unknownConditions: unknown === 'eligible' || unknown === 'ineligible' ? unknown : { unmetered: 'eligible' },
  };
}

declare global {
  interface Window {
    flockDemo?: DemoHooks;
  }
}

const byId = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing`);
  return element as T;
};

const config = readConfig();
const state: DemoState = {
  ready: false,
  backend: null,
  status: 'idle',
  conditions: { idle: 'unknown', charging: 'unknown', unmetered: 'unknown' },
  eligible: false,
  globalVersion: null,
  personalVersion: null,
  fineTunedEpochs: 0,
  exampleCount: 0,
  drawnCount: 0,
  roundsTrained: 0,
  roundsAbandoned: 0,
  bytesUploaded: Number(localStorage.getItem('flock-demo-bytes-uploaded') ?? 0) || 0,
  lastEvaluation: null,
  statusHistory: [],
  errors: [],
};

// ------------------------------------------------------------------ rendering

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
}

function percent(value: number | null): string {
  return value === null ? '–' : `${(100 * value).toFixed(1)} %`;
}

function log(message: string, kind: 'info' | 'good' | 'warn' = 'info'): void {
  const list = byId<HTMLOListElement>('log');
  const item = document.createElement('li');
  item.className = kind;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  item.append(time, document.createTextNode(message));
  list.prepend(item);
  while (list.children.length > 40) list.lastElementChild?.remove();
}

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

function renderCondition(id: string, value: ConditionValue): void {
  const element = byId(id);
  element.textContent = value;
  element.className = `chip ${value}`;
}

function render(): void {
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
  byId('eligibility').textContent = state.eligible
    ? 'Eligible: this device may be picked for training.'
    : `Not eligible: training waits until the device is ${missing.length ? missing.join(', ') : 'ready'}.`;
  byId('eligibility').className = `eligibility ${state.eligible ? 'yes' : 'no'}`;
  byId('global-version').textContent = state.globalVersion === null ? '–' : `v${state.globalVersion}`;
  const personal = byId('personal-version');
  if (state.personalVersion === null) personal.textContent = 'none yet';
  else {
    personal.textContent = `v${state.personalVersion} + local`;
    const detail = document.createElement('small');
    detail.textContent = state.fineTunedEpochs > 0 ? `fine-tuned ${state.fineTunedEpochs} epoch${state.fineTunedEpochs === 1 ? '' : 's'} on this device` : 'as received';
    personal.append(detail);
  }
  byId('backend').textContent = state.backend ?? '–';
  byId('rounds-trained').textContent = `${state.roundsTrained}${state.roundsAbandoned ? ` (${state.roundsAbandoned} abandoned)` : ''}`;
  byId('bytes-uploaded').textContent = formatBytes(state.bytesUploaded);
  byId('bytes-uploaded').dataset.bytes = String(state.bytesUploaded);
  byId('example-count').textContent = String(state.exampleCount);
  byId('drawn-count').textContent = String(state.drawnCount);
  renderEvaluation();
}

function renderEvaluation(): void {
  const container = byId('evaluation');
  const report = state.lastEvaluation;
  if (!report) {
    container.className = 'evaluation empty';
    container.textContent = 'No global model tested yet.';
    return;
  }
  container.className = 'evaluation';
  container.dataset.version = String(report.modelVersion);
  const row = (name: string, accuracy: number | null, highlight: boolean): string =>
    `<div class="eval-row${highlight ? ' best' : ''}"><span>${name}</span><div class="eval-bar"><div style="width:${accuracy === null ? 0 : (100 * accuracy).toFixed(1)}%"></div></div><b>${percent(accuracy)}</b></div>`;
  const personalBetter = report.personalAccuracy !== null && report.personalAccuracy > report.globalAccuracy;
  container.innerHTML =
    `<p class="eval-head">Global v${report.modelVersion} on ${report.numExamples} held-out local examples</p>` +
    row(`Global v${report.modelVersion}`, report.globalAccuracy, !personalBetter) +
    row('Personal', report.personalAccuracy, personalBetter) +
    `<p class="eval-verdict ${report.adopted ? 'adopted' : 'kept'}">${report.adopted ? 'Adopted and fine-tuned on this device' : 'Kept the personal model'}</p>`;
}

// ------------------------------------------------------------------ data

const exampleStore = await ExampleStore.open();
let examples: LabelledExample[] = await exampleStore.all();
const dataSource = new ArrayDataSource({ train: { xs: [], ys: [] } });
let slicePromise: Promise<MnistSlice> | null = null;
const mnistSlice = (): Promise<MnistSlice> => (slicePromise ??= loadMnistSlice(new URL('mnist-slice.bin', document.baseURI).href));

function oneHot(label: number): Float32Array {
  const row = new Float32Array(10);
  row[label] = 1;
  return row;
}

/** Rebuilds the SDK's data source from the stored examples (every 5th one held out for tests). */
function refreshDataSource(): void {
  const split = ArrayDataSource.fromExamples(
    examples.map((example) => toUnitPixels(example.pixels)),
    examples.map((example) => oneHot(example.label)),
    { testFraction: 0.2 },
  );
  dataSource.replace({ train: split.trainingData() ?? { xs: [], ys: [] }, test: split.testData() });
  state.exampleCount = examples.length;
  state.drawnCount = examples.filter((example) => example.source === 'drawn').length;
  renderThumbnails();
}

function renderThumbnails(): void {
  const container = byId('thumbs');
  container.replaceChildren();
  for (const example of examples.slice(-32).reverse()) {
    const figure = document.createElement('figure');
    const canvas = document.createElement('canvas');
    paintDigit(canvas, toUnitPixels(example.pixels));
    const caption = document.createElement('figcaption');
    caption.textContent = String(example.label);
    figure.append(canvas, caption);
    container.append(figure);
  }
}

async function addExamples(added: LabelledExample[]): Promise<void> {
  await exampleStore.add(added);
  examples = examples.concat(added);
  refreshDataSource();
  render();
  await maybeStart();
}

// ------------------------------------------------------------------ the SDK

tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
state.backend = await initBrowserBackend({
  wasmPaths: {
    'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
    'tfjs-backend-wasm.wasm': wasmPlainUrl,
    'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimdUrl,
  },
});

const client = new FederatedClient({
  serverUrl: config.serverUrl,
  clientToken: config.clientToken,
  dataSource,
  conditions: browserConditions({ idleAfterMs: config.idleAfterMs }),
  unknownConditions: config.unknownConditions,
  store: new IndexedDbModelStore(),
  personalization: { fineTuneEpochs: 1, learningRate: 0.05, batchSize: 16 },
  adoption: { tolerance: 0.02 },
});

function syncFromClient(): void {
  const { values, eligible } = client.conditions;
  state.conditions = { idle: values.idle, charging: values.charging, unmetered: values.unmetered };
  state.eligible = eligible;
  const info = client.modelInfo;
  state.personalVersion = info.personalVersion;
  state.fineTunedEpochs = info.fineTunedEpochs;
  if (info.lastEvaluation && (!state.lastEvaluation || info.lastEvaluation.modelVersion >= state.lastEvaluation.modelVersion)) state.lastEvaluation = info.lastEvaluation;
  const known = [state.globalVersion, info.cachedGlobalVersion, info.lastEvaluatedVersion, info.personalVersion].filter((v): v is number => v !== null);
  state.globalVersion = known.length ? Math.max(...known) : null;
  if (client.clientId) byId('client-id').textContent = client.clientId.slice(0, 8);
  render();
}

function noteGlobalVersion(version: number | null): void {
  if (version !== null && (state.globalVersion === null || version > state.globalVersion)) state.globalVersion = version;
}

client.on('statusChange', ({ status }) => {
  state.status = status;
  state.statusHistory.push(status);
  if (status === 'training') byId('train-progress').style.width = '0%';
  syncFromClient();
});
client.on('eligibilityChange', ({ eligible, reasons }) => {
  log(eligible ? 'Device is eligible for training' : `Not eligible: ${reasons.join(', ').replaceAll('_', ' ')}`, eligible ? 'good' : 'info');
  syncFromClient();
});
client.on('connected', (welcome) => {
  noteGlobalVersion(welcome.currentModelVersion);
  log(`Connected; global model ${welcome.currentModelVersion === null ? 'not published yet' : `v${welcome.currentModelVersion}`}`);
  syncFromClient();
});
client.on('modelPublished', ({ version }) => {
  noteGlobalVersion(version);
  log(`Global model v${version} published`);
  syncFromClient();
});
client.on('roundJoined', (round) => {
  noteGlobalVersion(round.modelVersion);
  log(`Selected for a round: training v${round.modelVersion} (${round.plan.epochs} epoch${round.plan.epochs === 1 ? '' : 's'})`, 'good');
  syncFromClient();
});
client.on('trainingProgress', (progress) => {
  const total = progress.epochs * progress.batchesPerEpoch;
  const done = progress.epoch * progress.batchesPerEpoch + progress.batch + 1;
  byId('train-progress').style.width = `${((100 * done) / Math.max(1, total)).toFixed(0)}%`;
  byId('train-progress').className = progress.purpose;
});
client.on('uploaded', ({ bytes, numExamples, trainLoss }) => {
  state.roundsTrained++;
  state.bytesUploaded += bytes;
  localStorage.setItem('flock-demo-bytes-uploaded', String(state.bytesUploaded));
  log(`Uploaded a ${formatBytes(bytes)} weight update (${numExamples} examples, loss ${trainLoss.toFixed(3)})`, 'good');
  syncFromClient();
});
client.on('roundAbandoned', ({ reason }) => {
  state.roundsAbandoned++;
  log(`Round abandoned (${reason.replaceAll('_', ' ')}); nothing uploaded`, 'warn');
  syncFromClient();
});
client.on('roundClosed', ({ outcome, modelVersion }) => {
  noteGlobalVersion(modelVersion);
  log(`Round ${outcome}${modelVersion !== null ? `: global v${modelVersion}` : ''}`);
  syncFromClient();
});
client.on('globalModelEvaluated', ({ report, decision }) => {
  noteGlobalVersion(report?.modelVersion ?? null);
  if (report) state.lastEvaluation = report;
  log(`Tested global v${report?.modelVersion ?? '?'}: ${decision.reason}`, decision.adopt ? 'good' : 'info');
  syncFromClient();
});
client.on('modelAdopted', ({ version }) => {
  log(`Personal model now based on global v${version}`, 'good');
  syncFromClient();
  void updatePrediction();
});
client.on('error', (error) => {
  state.errors.push(`${error.code}: ${error.message}`);
  log(`${error.code}: ${error.message}`, 'warn');
});

let started = false;
async function maybeStart(): Promise<void> {
  if (started) return;
  if (examples.length < MIN_EXAMPLES) {
    state.status = 'no data';
    render();
    return;
  }
  started = true;
  await client.start();
  syncFromClient();
}

// ------------------------------------------------------------------ the pad

const pad = new DigitPad(byId<HTMLCanvasElement>('pad'), () => schedulePrediction());
let predictionQueued = false;
let predicting = false;

function schedulePrediction(): void {
  byId('pad-hint').hidden = !pad.isEmpty;
  if (predictionQueued) return;
  predictionQueued = true;
  requestAnimationFrame(() => {
    predictionQueued = false;
    void updatePrediction();
  });
}

function renderBars(probabilities: ArrayLike<number> | null): void {
  const bars = byId<HTMLOListElement>('bars');
  let best = -1;
  if (probabilities) for (let d = 0; d < 10; d++) if (best < 0 || probabilities[d]! > probabilities[best]!) best = d;
  bars.replaceChildren(
    ...Array.from({ length: 10 }, (_, digit) => {
      const item = document.createElement('li');
      const value = probabilities ? probabilities[digit]! : 0;
      item.className = digit === best ? 'best' : '';
      item.innerHTML = `<span>${digit}</span><div class="bar"><div style="width:${(100 * value).toFixed(1)}%"></div></div>`;
      return item;
    }),
  );
  byId('guess').textContent = best >= 0 ? String(best) : '?';
  byId('guess').classList.toggle('empty', best < 0);
  byId('guess-confidence').textContent = best >= 0 && probabilities ? `${(100 * probabilities[best]!).toFixed(0)} % sure` : '';
}

async function updatePrediction(): Promise<void> {
  const pixels = pad.toPixels();
  const preview = byId<HTMLCanvasElement>('preview');
  paintDigit(preview, pixels ?? new Float32Array(784));
  if (!pixels) {
    renderBars(null);
    return;
  }
  if (predicting) return;
  predicting = true;
  try {
    if (!client.modelInfo.hasModel) {
      byId('guess-confidence').textContent = 'no model yet';
      return;
    }
    const output = await client.predict(pixels);
    const probabilities = await output.data();
    output.dispose();
    renderBars(probabilities);
  } catch (error) {
    byId('guess-confidence').textContent = 'no model yet';
    console.debug('predict failed', error);
  } finally {
    predicting = false;
  }
}

const labels = byId('labels');
for (let digit = 0; digit <= 9; digit++) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'digit';
  button.textContent = String(digit);
  button.dataset.digit = String(digit);
  button.addEventListener('click', () => {
    const pixels = pad.toPixels();
    if (!pixels) {
      byId('pad-message').textContent = 'Draw a digit first, then pick its label.';
      return;
    }
    void addExamples([{ pixels: toBytePixels(pixels), label: digit, source: 'drawn' }]).then(() => {
      byId('pad-message').textContent =
        examples.length < MIN_EXAMPLES ? `Saved as ${digit}. ${MIN_EXAMPLES - examples.length} more to join training.` : `Saved as ${digit} on this device.`;
      pad.clear();
    });
  });
  labels.append(button);
}
byId('clear-pad').addEventListener('click', () => pad.clear());

byId('seed-mnist').addEventListener('click', () => {
  const button = byId<HTMLButtonElement>('seed-mnist');
  button.disabled = true;
  void mnistSlice()
    .then((slice) => addExamples(mnistWindow(slice, config.seed, SEED_EXAMPLES)))
    .then(() => log(`Added ${SEED_EXAMPLES} MNIST examples (window ${config.seed})`))
    .catch((error: unknown) => log(`Seeding failed: ${String(error)}`, 'warn'))
    .finally(() => {
      button.disabled = false;
    });
});

byId('clear-examples').addEventListener('click', () => {
  void exampleStore.clear().then(() => {
    examples = [];
    refreshDataSource();
    render();
    log('Forgot all local examples');
  });
});

// ------------------------------------------------------------------ test hooks and start

window.flockDemo = {
  state,
  async predictDigits(count: number): Promise<number[]> {
    const slice = await mnistSlice();
    const rows = Array.from({ length: count }, (_, i) => toUnitPixels(mnistTestImage(slice, i).pixels));
    const output = await client.predict(rows);
    const argMax = output.argMax(-1);
    const digits = Array.from(await argMax.data());
    output.dispose();
    argMax.dispose();
    return digits;
  },
};

byId('server-url').textContent = config.serverUrl;
refreshDataSource();
renderBars(null);
await client.load();
syncFromClient();
setInterval(syncFromClient, 500);
await maybeStart();
state.ready = true;
document.body.dataset.ready = 'true';
log(`Ready (${state.backend} backend, ${examples.length} local examples)`);
