import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientEvent } from '@flock/client-sdk/protocol';
import { PUSH_INTERVAL_MS } from '../../src/dashboard/dashboard.gateway.js';
import type { RoundRecord } from '../../src/contract/index.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
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
  await coordinator.devicesLeft();
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

  it('serves every module the page imports, through its import map, and nothing else under /dashboard/assets', async () => {
    const get = async (path: string) => {
      const response = await fetch(`${coordinator.url}${path}`);
      return { status: response.status, type: response.headers.get('content-type') ?? '', text: await response.text() };
    };
    const html = (await get('/dashboard')).text;
    const importMap = JSON.parse(/<script type="importmap">([\s\S]*?)<\/script>/.exec(html)![1]!) as { imports: Record<string, string> };
    const entry = /<script type="module" src="([^"]+)">/.exec(html)![1]!;

    // Walk the module graph from the entry as the browser does: relative imports, bare ones through the import map.
    const modules = new Map<string, string>();
    const queue = [entry];
    for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
      if (modules.has(path)) continue;
      const module = await get(path);
      expect(module.status, path).toBe(200);
      expect(module.type, path).toMatch(/^text\/javascript/);
      modules.set(path, module.text);
      for (const [, specifier] of module.text.matchAll(/\b(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g)) {
        if (specifier!.startsWith('.')) queue.push(new URL(specifier!, `http://page${path}`).pathname);
        else {
          expect(importMap.imports, `${path} imports ${specifier}`).toHaveProperty([specifier!]);
          queue.push(importMap.imports[specifier!]!);
        }
      }
    }
    const served = [...modules.keys()];
    expect(served).toEqual(expect.arrayContaining(Object.values(importMap.imports)));
    expect(served.length).toBeGreaterThan(Object.keys(importMap.imports).length + 5); // the page's own modules
    expect(modules.get('/dashboard/assets/uplot.esm.js')).toContain('export { uPlot as default }');
    expect(modules.get('/dashboard/assets/socket.io.esm.min.js')).toMatch(/as io\b/);
    // The round statuses come from the protocol's one definition, not a copy.
    expect(modules.get(importMap.imports['@flock/client-sdk/protocol/round-status']!)).toContain(
      "export const ROUND_OUTCOMES = ['committed', 'failed', 'aborted'];",
    );
    const own = served.filter((path) => !/uplot|socket\.io|round-status/.test(path)).map((path) => modules.get(path)!);
    expect(own.some((text) => text.includes("io('/operators'"))).toBe(true);
    // Nothing from the server is ever parsed as HTML.
    for (const text of own) expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser/);

    expect((await get('/dashboard/assets/uplot.min.css')).type).toMatch(/^text\/css/);
    expect((await get('/dashboard/assets/dashboard.css')).type).toMatch(/^text\/css/);
    for (const file of [
      'tsconfig.json',
      'index.html',
      'missing.js',
      'Dashboard.JS',
      'round-status.js.map',
      '..%2F..%2Fpackage.json',
      '..%2Fdashboard.controller.js',
      '..%2Fdashboard-state.ts',
    ]) {
      expect((await get(`/dashboard/assets/${file}`)).status, file).toBe(404);
    }
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
    expect(evaluated.rounds[0]!.metrics.localEvaluation).toMatchObject({
      globalAccuracy: 0.9,
      personalAccuracy: 0.92,
      spread: { globalAccuracy: { q1: 0.9, median: 0.9, q3: 0.9 }, personalAccuracy: { median: 0.92 }, personalReports: 1, personalBetterShare: 1 },
    });

    // A rollback through the REST API shows up as a new current version.
    const rolled = await coordinator.api<{ version: number }>(`/api/models/${baseVersion}/rollback`, { method: 'POST' });
    expect(rolled.status).toBe(201);
    await feed.waitFor((s) => s.models[0]!.version === rolled.body.version && s.models[0]!.source === 'rollback', 'the rollback version');

    device.disconnect();
    await feed.waitFor((s) => s.clients.connected === 0, 'the device gone');
  });

  it('throttles pushes to at most 4 per second, however fast clients change', async () => {
    const feed = await OperatorFeed.connect(coordinator.url, OPERATOR_TOKEN);
    feeds.push(feed);
    await feed.waitFor(() => true, 'the connect snapshot');
    const burst = await Promise.all(Array.from({ length: 8 }, () => ProtocolClient.connect(coordinator.url, { eligible: false })));
    devices.push(...burst);
    await feed.waitFor((s) => s.clients.connected === 8 && s.clients.eligible === 0, 'eight ineligible devices');
    const before = feed.states.length;

    // Bursts of 40 eligibility flips, each sent just after a push: the gateway may not answer at once.
    // Every burst ends with all eight on or all off, and the feed must show that state before the next one,
    // so at least BURSTS pushes are observed whatever the machine's speed.
    const BURSTS = 5;
    for (let b = 0; b < BURSTS; b++) {
      const last = b % 2 === 0;
      for (const device of burst) for (let flip = 0; flip < 5; flip++) device.setEligible(flip % 2 === 0 ? last : !last);
      await feed.waitFor((s) => s.clients.eligible === (last ? 8 : 0), `burst ${b + 1} shown`, feed.states.length);
    }

    const pushed = feed.states.slice(before - 1).map((s) => s.state.serverTime);
    expect(pushed.length - 1).toBeGreaterThanOrEqual(BURSTS);
    // Coalesced: a burst of 40 changes reaches the operator in one push, two if its first flip lands after the interval.
    expect(pushed.length - 1).toBeLessThanOrEqual(2 * BURSTS);
    // Gaps on the coordinator's clock (serverTime), so that delivery delays in this busy process do not count.
    // A push starts PUSH_INTERVAL_MS or more after the one before and stamps serverTime once its snapshot is
    // built (synchronous SQLite reads, a few ms): a gap is short of the interval only by the earlier build time,
    // and over the whole run the shortfalls telescope to one. 50 ms covers a build stalled on a loaded machine.
    for (let i = 1; i < pushed.length; i++) expect(pushed[i]! - pushed[i - 1]!, `gap ${i}`).toBeGreaterThanOrEqual(PUSH_INTERVAL_MS - 50);
    expect(pushed.at(-1)! - pushed[0]!).toBeGreaterThanOrEqual((pushed.length - 1) * PUSH_INTERVAL_MS - 50);
  });
});
