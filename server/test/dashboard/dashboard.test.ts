import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientEvent } from '@flock/client-sdk/protocol';
import type { RoundRecord } from '../../src/contract/index.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';
import { OperatorFeed, refusal } from './operator-socket.js';

let coordinator: TestCoordinator;
const devices: ProtocolClient[] = [];
const feeds: OperatorFeed[] = [];

beforeAll(async () => {
  coordinator = await startTestCoordinator();
});
afterEach(async () => {
  devices.splice(0).forEach((device) => device.disconnect());
  feeds.splice(0).forEach((feed) => feed.close());
  await waitFor(() => coordinator.api<{ connected: number }>('/api/clients'), (r) => r.body.connected === 0, 5000, 'devices to leave');
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('the /dashboard page', () => {
  it('serves the HTML shell without a token: the chart library, the socket.io client and the script, and no data', async () => {
    const response = await fetch(`${coordinator.url}/dashboard`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    const html = await response.text();
    expect(html).toContain('/dashboard/assets/uplot.esm.js');
    expect(html).toContain('/dashboard/assets/socket.io.esm.min.js');
    expect(html).toContain('<script type="module" src="/dashboard/assets/dashboard.js">');
    expect(html).toContain('id="token"');
    expect(html).not.toContain(OPERATOR_TOKEN);
  });

  it('serves its assets, and nothing else under /dashboard/assets', async () => {
    const get = async (file: string) => {
      const response = await fetch(`${coordinator.url}/dashboard/assets/${file}`);
      return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
    };
    const uplot = await get('uplot.esm.js');
    expect(uplot.status).toBe(200);
    expect(uplot.type).toMatch(/^text\/javascript/);
    expect(uplot.text).toContain('export { uPlot as default }');
    expect((await get('uplot.min.css')).type).toMatch(/^text\/css/);
    const sio = await get('socket.io.esm.min.js');
    expect(sio.status).toBe(200);
    expect(sio.text).toMatch(/as io\b/);
    const script = await get('dashboard.js');
    expect(script.status).toBe(200);
    expect(script.text).toContain("io('/operators'");
    expect((await get('dashboard.css')).status).toBe(200);
    expect((await get('tsconfig.json')).status).toBe(404);
    expect((await get('index.html')).status).toBe(404);
    expect((await get('..%2F..%2Fpackage.json')).status).toBe(404);
  });
});

describe('the /operators socket.io namespace', () => {
  it.each([
    ['no token', undefined],
    ['an empty token', { token: '' }],
    ['a wrong token', { token: 'not-the-operator-token' }],
    ['the client token', { token: CLIENT_TOKEN }],
  ])('refuses a handshake with %s', async (_what, auth) => {
    const error = await refusal(coordinator.url, auth);
    expect(error.message).toBe('unauthorized');
    expect(error.data?.code).toBe('unauthorized');
  });

  it('pushes a snapshot on connect, then live client counts, round progress and the committed version', async () => {
    const feed = await OperatorFeed.connect(coordinator.url, OPERATOR_TOKEN);
    feeds.push(feed);
    const first = await feed.waitFor(() => true, 'the connect snapshot');
    expect(first.clients).toEqual({ connected: 0, eligible: 0, inRound: 0 });
    expect(first.activeRound).toBeNull();
    expect(first.models.length).toBeGreaterThanOrEqual(1);
    expect(first.strategies.map((s) => s.name)).toContain(first.defaultStrategy);
    expect(first.strategies.find((s) => s.name === 'fedyogi')).toMatchObject({ defaults: { serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 0.001 } });
    const baseVersion = first.models[0]!.version;
    const roundsBefore = first.rounds.length;

    // A device connects (ineligible at first: no registry event, the counts poll catches it), then becomes eligible.
    const device = await ProtocolClient.connect(coordinator.url, { eligible: false });
    devices.push(device);
    await feed.waitFor((s) => s.clients.connected === 1 && s.clients.eligible === 0, 'one connected, ineligible device');
    device.setEligible(true);
    await feed.waitFor((s) => s.clients.eligible === 1, 'one eligible device');

    const started = await coordinator.api<RoundRecord>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 1, targetClients: 1, overSelection: 1, deadlineSeconds: 30 }),
    });
    expect(started.status).toBe(201);
    const configuration = await device.configurations.next();
    const reporting = await feed.waitFor((s) => s.activeRound?.status === 'reporting', 'the round reporting');
    expect(reporting.activeRound!.id).toBe(started.body.id);
    expect(reporting.activeRound!.metrics.selected).toBe(1);
    expect(reporting.activeRound!.timeLeftMs).toBeGreaterThan(0);
    expect(reporting.activeRound!.timeLeftMs).toBeLessThanOrEqual(30_000);
    expect(reporting.clients.inRound).toBe(1);

    const model = await device.fetchModel(configuration.modelVersion);
    const result = await device.upload(configuration, model, makeDelta(model, 1), 120, 0.42);
    expect(result).toEqual({ accepted: true });

    const committed = await feed.waitFor((s) => s.models[0]!.version === baseVersion + 1, 'the committed version');
    expect(committed.activeRound).toBeNull();
    expect(committed.clients).toEqual({ connected: 1, eligible: 1, inRound: 0 });
    expect(committed.rounds).toHaveLength(roundsBefore + 1);
    const round = committed.rounds[0]!;
    expect(round).toMatchObject({ id: started.body.id, status: 'committed', committedVersion: baseVersion + 1 });
    expect(round.metrics).toMatchObject({ selected: 1, accepted: 1, totalExamples: 120, meanTrainLoss: 0.42 });
    expect(round.metrics.updateNorm).toBeGreaterThan(0);
    expect(round.metrics.bytesReceived).toBeGreaterThan(0);
    expect(committed.models[0]).toMatchObject({ version: baseVersion + 1, roundId: started.body.id, source: 'round' });

    // A local evaluation of the new version emits no event: the periodic check pushes it.
    device.socket.emit(ClientEvent.evaluation, {
      modelVersion: baseVersion + 1,
      numExamples: 50,
      globalLoss: 0.3,
      globalAccuracy: 0.9,
      personalLoss: 0.25,
      personalAccuracy: 0.92,
      adopted: true,
    });
    const evaluated = await feed.waitFor((s) => s.rounds[0]?.metrics.localEvaluation?.reports === 1, 'the local evaluation');
    expect(evaluated.rounds[0]!.metrics.localEvaluation).toMatchObject({ globalAccuracy: 0.9, personalAccuracy: 0.92 });

    // A rollback through the REST API shows up as a new current version.
    const rolled = await coordinator.api<{ version: number }>(`/api/models/${baseVersion}/rollback`, { method: 'POST' });
    expect(rolled.status).toBe(201);
    await feed.waitFor((s) => s.models[0]!.version === rolled.body.version && s.models[0]!.source === 'rollback', 'the rollback version');

    device.disconnect();
    await feed.waitFor((s) => s.clients.connected === 0, 'the device gone');
  });

  it('throttles pushes to at most 4 per second', async () => {
    const feed = await OperatorFeed.connect(coordinator.url, OPERATOR_TOKEN);
    feeds.push(feed);
    await feed.waitFor(() => true, 'the connect snapshot');
    // A burst of connections and eligibility flips: many changes, few snapshots.
    const burst = await Promise.all(Array.from({ length: 8 }, () => ProtocolClient.connect(coordinator.url)));
    devices.push(...burst);
    for (let i = 0; i < 5; i++) burst.forEach((device) => device.setEligible(i % 2 === 1));
    burst.forEach((device) => device.setEligible(true));
    await feed.waitFor((s) => s.clients.connected === 8 && s.clients.eligible === 8, 'eight eligible devices');
    const pushed = feed.states.slice(1).map((s) => s.at);
    for (let i = 1; i < pushed.length; i++) expect(pushed[i]! - pushed[i - 1]!).toBeGreaterThanOrEqual(200);
  });
});
