import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_TOKEN, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

/*
 * The SDK as an app installs it: `pnpm pack`ed, installed with npm into a project outside the
 * workspace that has its own TensorFlow.js of another patch version than the workspace's 4.22.0.
 * tfjs is a peer dependency of the SDK, so the app's copy is the only one.
 */

const run = promisify(execFile);
const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../client-sdk');
const APP_TFJS = '4.21.0';

/** The outside app: its own tf.sequential() as the initial model, random local examples, one round. */
const APP_SCRIPT = `
import * as tf from '@tensorflow/tfjs';
import { ArrayDataSource, FederatedClient, staticCondition, MemoryModelStore } from '@flock/client-sdk';
import { initNodeBackend } from '@flock/client-sdk/node';

console.log('backend', await initNodeBackend());
const initialModel = tf.sequential({ layers: [tf.layers.dense({ inputShape: [784], units: 10, activation: 'softmax' })] });
const xs = Array.from({ length: 40 }, (_, i) => Array.from({ length: 784 }, (_, j) => ((i * 31 + j) % 255) / 255));
const labels = xs.map((_, i) => i % 10);
const client = new FederatedClient({
  serverUrl: process.env.FLOCK_URL,
  clientToken: process.env.FLOCK_CLIENT_TOKEN,
  dataSource: ArrayDataSource.fromExamples(xs, labels, { testFraction: 0.25 }),
  conditions: ['idle', 'charging', 'unmetered'].map((name) => staticCondition(name, 'yes')),
  store: new MemoryModelStore(),
  initialModel,
  socketOptions: { transports: ['websocket'] },
});
client.on('error', (error) => console.error('sdk error', error.message));
client.on('uploaded', (event) => console.log('uploaded', JSON.stringify(event.result)));
await client.start();
const closed = await client.next('roundClosed');
console.log('closed', closed.outcome);
await client.dispose();
`;

let coordinator: TestCoordinator;
let appDir: string;

beforeAll(async () => {
  appDir = mkdtempSync(join(tmpdir(), 'flock-sdk-app-'));
  await run('pnpm', ['pack', '--pack-destination', appDir], { cwd: SDK_DIR });
  const tarball = readdirSync(appDir).find((name) => name.endsWith('.tgz'));
  if (!tarball) throw new Error(`pnpm pack left no tarball in ${appDir}`);
  const manifest = {
    name: 'outside-app',
    private: true,
    type: 'module',
    dependencies: { '@flock/client-sdk': `file:./${tarball}`, '@tensorflow/tfjs': APP_TFJS, '@tensorflow/tfjs-backend-wasm': APP_TFJS },
  };
  writeFileSync(join(appDir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(appDir, 'app.mjs'), APP_SCRIPT);
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: appDir, timeout: 240_000 });
  coordinator = await startTestCoordinator();
}, 300_000);

afterAll(async () => {
  await coordinator?.dispose();
  if (appDir) rmSync(appDir, { recursive: true, force: true });
});

describe('the packed SDK in an app with its own TensorFlow.js', () => {
  it('installs one copy of tfjs (the app’s) and ships its license and types', async () => {
    const { stdout } = await run('npm', ['ls', '--all', '--json', '@tensorflow/tfjs-core'], { cwd: appDir });
    const versions = new Set([...stdout.matchAll(/"@tensorflow\/tfjs-core": \{\s*"version": "([^"]+)"/g)].map((match) => match[1]));
    expect([...versions]).toEqual([APP_TFJS]);
    const { stdout: files } = await run('tar', ['-tzf', readdirSync(appDir).find((name) => name.endsWith('.tgz'))!], { cwd: appDir });
    expect(files).toContain('package/LICENSE');
    expect(files).toContain('package/dist/index.d.ts');
  });

  it('commits a round with the app’s tf.sequential() as the initial model and no duplicate-kernel warning', async () => {
    // Without the NODE_PATH pnpm sets for the test runner: it would resolve the workspace's packages, not the app's.
    const { NODE_PATH: _workspacePath, ...env } = process.env;
    const app = spawn(process.execPath, ['app.mjs'], { cwd: appDir, env: { ...env, FLOCK_URL: coordinator.url, FLOCK_CLIENT_TOKEN: CLIENT_TOKEN } });
    let output = '';
    app.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    app.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolveExit) => app.on('exit', resolveExit));
    try {
      const started = await coordinator.api<{ id: string }>('/api/rounds', {
        method: 'POST',
        body: JSON.stringify({ minClients: 1, targetClients: 1, overSelection: 1, epochs: 1, batchSize: 10, selectionTimeoutSeconds: 60 }),
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      const round = await coordinator.roundEnded(started.body.id, 90_000);
      expect(round.status, output).toBe('committed');
      expect(await exited, output).toBe(0);
      expect(output).toContain('uploaded {"accepted":true}');
      expect(output).not.toMatch(/already registered/i);
      expect(output).not.toContain('sdk error');
    } finally {
      app.kill();
    }
  }, 120_000);
});
