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
 *
 * This module puts the page together and starts it: config.ts, state.ts, local-examples.ts,
 * sdk-client.ts, controls.ts and render.ts each do one part.
 */
import { readConfig } from './config.js';
import { wireControls } from './controls.js';
import type { DemoHooks } from './demo-state.js';
import { toUnitPixels } from './example-store.js';
import { LocalExamples } from './local-examples.js';
import { mnistTestImage, pageMnistSlice } from './mnist-slice.js';
import { log, showServerUrl } from './render.js';
import { DemoClient, initBackend } from './sdk-client.js';
import { initialState } from './state.js';

declare global {
  interface Window {
    flockDemo?: DemoHooks;
  }
}

const config = readConfig();
const state = initialState();
const examples = await LocalExamples.open();
state.backend = await initBackend();
const client = new DemoClient(config, state, examples);
wireControls({ state, examples, client, seed: config.seed, personalization: config.personalization });

window.flockDemo = {
  state,
  async predictDigits(count: number): Promise<number[]> {
    const slice = await pageMnistSlice();
    const rows = Array.from({ length: count }, (_, i) => toUnitPixels(mnistTestImage(slice, i).pixels));
    const output = await client.sdk.predict(rows);
    const argMax = output.argMax(-1);
    const digits = Array.from(await argMax.data());
    output.dispose();
    argMax.dispose();
    return digits;
  },
};

showServerUrl(config.serverUrl);
await client.sdk.load();
client.sync();
setInterval(() => client.sync(), 500);
await client.maybeStart();
state.ready = true;
document.body.dataset.ready = 'true';
log(`Ready (${state.backend} backend, ${examples.all.length} local examples)`);
