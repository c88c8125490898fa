/**
 * The SDK as this app embeds it: the wasm backend, one FederatedClient on the device's examples,
 * and its events turned into the page's state, activity log and view.
 */
import * as tf from '@tensorflow/tfjs';
import { FederatedClient } from '@flock/client-sdk';
import { browserConditions, IndexedDbModelStore, initBrowserBackend } from '@flock/client-sdk/browser';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmPlainUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
// Never loaded (threads are off), but tfjs's setWasmPaths refuses a map that lacks any of the three.
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { DEMO_PERSONAL_LAYERS, MIN_EXAMPLES, type DemoConfig } from './config.js';
import type { DemoState } from './demo-state.js';
import type { LocalExamples } from './local-examples.js';
import { formatBytes, log, render, renderTrainingProgress, showClientId } from './render.js';
import { addBytesUploaded } from './state.js';

/** Starts TensorFlow.js on the single-threaded wasm backend; resolves with the backend's name. */
export function initBackend(): Promise<string> {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  return initBrowserBackend({
    wasmPaths: {
      'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
      'tfjs-backend-wasm.wasm': wasmPlainUrl,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimdUrl,
    },
  });
}

export class DemoClient {
  readonly sdk: FederatedClient;
  private started = false;

  constructor(
    config: DemoConfig,
    private readonly state: DemoState,
    private readonly examples: LocalExamples,
  ) {
    this.sdk = new FederatedClient({
      serverUrl: config.serverUrl,
      clientToken: config.clientToken,
      dataSource: examples.dataSource,
      conditions: browserConditions({ idleAfterMs: config.idleAfterMs }),
      unknownConditions: config.unknownConditions,
      store: new IndexedDbModelStore(),
      // The user's choice (controls.ts): fine-tune the adopted model, Ditto, or keep the output layer on the device.
      personalization: {
        method: config.personalization,
        ...(config.personalization === 'personal-layers' ? { personalLayers: DEMO_PERSONAL_LAYERS } : {}),
        fineTuneEpochs: 1,
        learningRate: 0.05,
        batchSize: 16,
      },
      adoption: { tolerance: 0.02 },
    });
    this.follow();
  }

  /** Copies what the SDK knows (conditions, model versions, local tests) into the state and redraws. */
  sync(): void {
    const { state, sdk } = this;
    const { values, eligible } = sdk.conditions;
    state.conditions = { idle: values.idle, charging: values.charging, unmetered: values.unmetered };
    state.eligible = eligible;
    const info = sdk.modelInfo;
    state.personalVersion = info.personalVersion;
    state.fineTunedEpochs = info.fineTunedEpochs;
    if (info.lastEvaluation && (!state.lastEvaluation || info.lastEvaluation.modelVersion >= state.lastEvaluation.modelVersion))
      state.lastEvaluation = info.lastEvaluation;
    const known = [state.globalVersion, info.cachedGlobalVersion, info.lastEvaluatedVersion, info.personalVersion].filter((v): v is number => v !== null);
    state.globalVersion = known.length ? Math.max(...known) : null;
    if (state.clientId) showClientId(state.clientId);
    render(state);
  }

  /** Joins federated training once the device holds MIN_EXAMPLES examples; until then says so. */
  async maybeStart(): Promise<void> {
    if (this.started) return;
    if (this.examples.all.length < MIN_EXAMPLES) {
      this.state.status = 'no data';
      render(this.state);
      return;
    }
    this.started = true;
    await this.sdk.start();
    this.sync();
  }

  private noteGlobalVersion(version: number | null): void {
    if (version !== null && (this.state.globalVersion === null || version > this.state.globalVersion)) this.state.globalVersion = version;
  }

  private follow(): void {
    const { state, sdk } = this;
    sdk.on('statusChange', ({ status }) => {
      state.status = status;
      state.statusHistory.push(status);
      if (status === 'training') renderTrainingProgress(0);
      this.sync();
    });
    sdk.on('eligibilityChange', ({ eligible, reasons }) => {
      log(eligible ? 'Device is eligible for training' : `Not eligible: ${reasons.join(', ').replaceAll('_', ' ')}`, eligible ? 'good' : 'info');
      this.sync();
    });
    sdk.on('connected', (welcome) => {
      state.clientId = welcome.clientId;
      this.noteGlobalVersion(welcome.currentModelVersion);
      log(`Connected; global model ${welcome.currentModelVersion === null ? 'not published yet' : `v${welcome.currentModelVersion}`}`);
      this.sync();
    });
    sdk.on('modelPublished', ({ version }) => {
      this.noteGlobalVersion(version);
      log(`Global model v${version} published`);
      this.sync();
    });
    sdk.on('roundJoined', (round) => {
      this.noteGlobalVersion(round.modelVersion);
      log(`Selected for a round: training v${round.modelVersion} (${round.plan.epochs} epoch${round.plan.epochs === 1 ? '' : 's'})`, 'good');
      this.sync();
    });
    sdk.on('trainingProgress', (progress) => {
      const total = progress.epochs * progress.batchesPerEpoch;
      const done = progress.epoch * progress.batchesPerEpoch + progress.batch + 1;
      renderTrainingProgress(done / Math.max(1, total), progress.purpose);
    });
    sdk.on('uploaded', ({ bytes, numExamples, trainLoss }) => {
      state.roundsTrained++;
      addBytesUploaded(state, bytes);
      log(`Uploaded a ${formatBytes(bytes)} weight update (${numExamples} examples, loss ${trainLoss.toFixed(3)})`, 'good');
      this.sync();
    });
    sdk.on('roundAbandoned', ({ reason }) => {
      state.roundsAbandoned++;
      log(`Round abandoned (${reason.replaceAll('_', ' ')}); nothing uploaded`, 'warn');
      this.sync();
    });
    sdk.on('roundClosed', ({ outcome, modelVersion }) => {
      this.noteGlobalVersion(modelVersion);
      log(`Round ${outcome}${modelVersion !== null ? `: global v${modelVersion}` : ''}`);
      this.sync();
    });
    sdk.on('globalModelEvaluated', ({ report, decision }) => {
      this.noteGlobalVersion(report?.modelVersion ?? null);
      if (report) state.lastEvaluation = report;
      log(`Tested global v${report?.modelVersion ?? '?'}: ${decision.reason}`, decision.adopt ? 'good' : 'info');
      this.sync();
    });
    sdk.on('modelAdopted', ({ version }) => {
      log(`Personal model now based on global v${version}`, 'good');
      this.sync();
    });
    sdk.on('error', (error) => {
      state.errors.push(`${error.code}: ${error.message}`);
      log(`${error.code}: ${error.message}`, 'warn');
    });
  }
}
