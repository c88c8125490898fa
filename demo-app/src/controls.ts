/**
 * The page's controls: the digit pad with its live prediction, the label buttons that store a
 * drawing as an example, and the buttons that seed MNIST examples or forget them all.
 */
import type { PersonalizationMethod } from '@flock/client-sdk';
import { MIN_EXAMPLES, PERSONALIZATION_KEY } from './config.js';
import type { DemoState } from './demo-state.js';
import { DigitPad, paintDigit, PIXEL_COUNT } from './digit-pad.js';
import { byId } from './dom.js';
import { toBytePixels, type LabelledExample } from './example-store.js';
import type { LocalExamples } from './local-examples.js';
import { mnistWindow, pageMnistSlice } from './mnist-slice.js';
import { log, render, renderBars, renderThumbnails } from './render.js';
import type { DemoClient } from './sdk-client.js';

/** How many MNIST examples "Seed with MNIST" adds. */
const SEED_EXAMPLES = 400;

export interface ControlsOptions {
  state: DemoState;
  examples: LocalExamples;
  client: DemoClient;
  /** Which MNIST window "Seed with MNIST" loads. */
  seed: number;
  personalization: PersonalizationMethod;
}

/** What each method means for this device, under the chooser. */
const METHOD_NOTES: Record<PersonalizationMethod, string> = {
  'fine-tune': 'Adopts each new global model that tests well on your held-out drawings, then fine-tunes it on the others.',
  ditto: 'Keeps a model of your own, trained on your drawings and pulled towards each new global model.',
  'personal-layers':
    "The output layer stays on this device and learns your drawings; only the other layers' updates are uploaded (rounds must declare it personal).",
};

/** The method chooser: the SDK takes its method at construction, so a new choice is remembered and the page reloads. */
function wireMethodChooser(current: PersonalizationMethod): void {
  const select = byId<HTMLSelectElement>('personalization-method');
  select.value = current;
  byId('personalization-note').textContent = METHOD_NOTES[current];
  select.addEventListener('change', () => {
    localStorage.setItem(PERSONALIZATION_KEY, select.value);
    const url = new URL(location.href);
    url.searchParams.delete('personalization');
    location.replace(url);
  });
}

export function wireControls({ state, examples, client, seed, personalization }: ControlsOptions): void {
  wireMethodChooser(personalization);
  const predictor = new PadPrediction(client);
  const pad: DigitPad = new DigitPad(byId<HTMLCanvasElement>('pad'), () => predictor.schedule(pad));

  const showExamples = (): void => {
    state.exampleCount = examples.all.length;
    state.drawnCount = examples.drawnCount;
    renderThumbnails(examples.all);
  };
  /** Stores new examples; the device joins training once it has enough. */
  const addExamples = async (added: LabelledExample[]): Promise<void> => {
    await examples.add(added);
    showExamples();
    render(state);
    await client.maybeStart();
  };

  wireLabelButtons(pad, async (digit, pixels) => {
    await addExamples([{ pixels: toBytePixels(pixels), label: digit, source: 'drawn' }]);
    const count = examples.all.length;
    byId('pad-message').textContent =
      count < MIN_EXAMPLES ? `Saved as ${digit}. ${MIN_EXAMPLES - count} more to join training.` : `Saved as ${digit} on this device.`;
  });
  byId('clear-pad').addEventListener('click', () => pad.clear());

  byId('seed-mnist').addEventListener('click', () => {
    const button = byId<HTMLButtonElement>('seed-mnist');
    button.disabled = true;
    void pageMnistSlice()
      .then((slice) => addExamples(mnistWindow(slice, seed, SEED_EXAMPLES)))
      .then(() => log(`Added ${SEED_EXAMPLES} MNIST examples (window ${seed})`))
      .catch((error: unknown) => log(`Seeding failed: ${String(error)}`, 'warn'))
      .finally(() => {
        button.disabled = false;
      });
  });

  byId('clear-examples').addEventListener('click', () => {
    inBackground(
      'Forgetting the examples',
      examples.clear().then(() => {
        showExamples();
        render(state);
        log('Forgot all local examples');
      }),
    );
  });

  // A new personal model answers the drawing on the pad again.
  client.sdk.on('modelAdopted', () => inBackground('Prediction', predictor.update(pad)));
  showExamples();
  renderBars(null);
}

/** One button per digit: stores the pad's drawing with that label, then clears the pad. */
function wireLabelButtons(pad: DigitPad, save: (digit: number, pixels: Float32Array) => Promise<void>): void {
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
      inBackground(
        'Saving the example',
        save(digit, pixels).then(() => pad.clear()),
      );
    });
    labels.append(button);
  }
}

/** The live answer to the pad's drawing: the preview and the personal model's probabilities. */
class PadPrediction {
  private queued = false;
  private predicting = false;

  constructor(private readonly client: DemoClient) {}

  /** Once per animation frame at most, however fast the pointer moves. */
  schedule(pad: DigitPad): void {
    byId('pad-hint').hidden = !pad.isEmpty;
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      inBackground('Prediction', this.update(pad));
    });
  }

  /** Predicts the pad's drawing with the personal model (one prediction at a time). */
  async update(pad: DigitPad): Promise<void> {
    const pixels = pad.toPixels();
    paintDigit(byId<HTMLCanvasElement>('preview'), pixels ?? new Float32Array(PIXEL_COUNT));
    if (!pixels) {
      renderBars(null);
      return;
    }
    if (this.predicting) return;
    this.predicting = true;
    try {
      if (!this.client.sdk.modelInfo.hasModel) {
        byId('guess-confidence').textContent = 'no model yet';
        return;
      }
      const output = await this.client.sdk.predict(pixels);
      const probabilities = await output.data();
      output.dispose();
      renderBars(probabilities);
    } catch (error) {
      byId('guess-confidence').textContent = 'no model yet';
      console.debug('predict failed', error);
    } finally {
      this.predicting = false;
    }
  }
}

/** Work a DOM event starts and nobody awaits: a failure is shown in the page's log, not lost in the console. */
function inBackground(what: string, task: Promise<unknown>): void {
  task.catch((error: unknown) => log(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, 'warn'));
}
