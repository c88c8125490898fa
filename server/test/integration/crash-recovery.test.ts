import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelVersionMeta, RoundDetails } from '../../src/contract/index.js';
import { coordinatorStarted } from '../support/coordinator-child.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, operatorFetch, waitFor } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const dataDir = mkdtempSync(join(tmpdir(), 'flock-crash-'));
const children: ChildProcess[] = [];

/** Starts the built coordinator as its own process (the real entry point) and returns its URL. */
async function startProcess(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      FLOCK_DATA_DIR: dataDir,
      FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
      FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
      FLOCK_DEFAULT_MODEL_EXAMPLES: '600',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const { url } = await coordinatorStarted(child, 'under test');
  return { child, url };
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolveExit) => {
    child.once('exit', () => resolveExit());
    child.kill('SIGKILL');
  });
}

async function weightsBytes(url: string, version: number | 'current'): Promise<Buffer> {
  const response = await noKeepAliveFetch(`${url}/api/models/${version}/weights.bin`, { headers: { Authorization: `Bearer ${CLIENT_TOKEN}` } });
  return Buffer.from(await response.arrayBuffer());
}

afterAll(() => {
  children.forEach((child) => child.exitCode === null && child.kill('SIGKILL'));
  rmSync(dataDir, { recursive: true, force: true });
});

describe('crash recovery (kill -9 of the coordinator process)', () => {
  it('serves the same committed version after a restart and aborts the round that was in flight', async () => {
    expect(existsSync(MAIN), 'build the server first (pnpm build)').toBe(true);
    const first = await startProcess();
    const devices = await Promise.all([0, 1].map(() => ProtocolClient.connect(first.url)));
    await waitFor(
      () => operatorFetch<{ eligible: number }>(first.url, '/api/clients'),
      (r) => r.body.eligible === 2,
      5000,
    );

    // round 1 commits version 2
    const round = await operatorFetch<{ id: string }>(first.url, '/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 2, targetClients: 2, overSelection: 1 }),
    });
    await Promise.all(
      devices.map(async (device, k) => {
        const configuration = await device.configurations.next();
        const model = await device.fetchModel(configuration.modelVersion);
        expect((await device.upload(configuration, model, makeDelta(model, k), 30)).accepted).toBe(true);
      }),
    );
    const committed = await waitFor(
      () => operatorFetch<RoundDetails>(first.url, `/api/rounds/${round.body.id}`),
      (r) => r.body.status === 'committed',
      20_000,
    );
    const version = committed.body.committedVersion!;
    expect(version).toBe(2);
    const before = await weightsBytes(first.url, version);

    // round 2 is in flight (configured, waiting for uploads) when the process is killed
    const inFlight = await operatorFetch<{ id: string }>(first.url, '/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 2, targetClients: 2, overSelection: 1, deadlineSeconds: 600 }),
    });
    await devices[0]!.configurations.next(1);
    await kill9(first.child);
    devices.forEach((d) => d.disconnect());

    const second = await startProcess();
    const current = await operatorFetch<ModelVersionMeta>(second.url, '/api/models/current');
    expect(current.body).toMatchObject({ version, roundId: round.body.id, source: 'round' });
    expect((await weightsBytes(second.url, 'current')).equals(before)).toBe(true);
    const aborted = await operatorFetch<RoundDetails>(second.url, `/api/rounds/${inFlight.body.id}`);
    expect(aborted.body).toMatchObject({ status: 'aborted', error: 'coordinator restarted while the round was in flight', committedVersion: null });
    expect(aborted.body.transitions.at(-1)).toMatchObject({ from: 'reporting', to: 'aborted' });
    // the restarted coordinator still runs rounds
    const health = await operatorFetch<{ activeRound: string | null; modelVersion: number }>(second.url, '/api/status');
    expect(health.body).toMatchObject({ activeRound: null, modelVersion: version });
    await kill9(second.child);
  });
});
