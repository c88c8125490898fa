import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { requireChromium } from '../../server/test/support/chromium.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, startTestCoordinator, waitFor, type TestCoordinator } from '../../server/test/support/coordinator.js';
import { CHROMIUM, CHROMIUM_ARGS, openDemoPage, seedMnist, wrapDemoPage, type DemoPage, type DeviceConditions } from '../support/demo-page.js';
import { serveDirectory, type StaticServer } from '../support/static-server.js';
import { noKeepAliveFetch } from '../../server/src/simulation/http-fetch.js';

/**
 * The demo app (demo-app/dist) in Debian's Chromium, several pages with their own storage and
 * faked device conditions, against a real coordinator per test. Skipped where /usr/bin/chromium is
 * absent (`apt-get install -y chromium`), and never under CI.
 */
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '..', '..');
const ARTIFACTS = join(here, '..', 'artifacts');
const DEMO_DIST = join(repoRoot, 'demo-app', 'dist');
/** Set DEMO_SCREENSHOT=1 to refresh docs/demo-app.png; runs (and CI) otherwise leave the tree clean. */
const DOCS_SCREENSHOT = process.env.DEMO_SCREENSHOT ? join(repoRoot, 'docs', 'demo-app.png') : null;

const PLUGGED_IN_ON_WIFI: DeviceConditions = { charging: true, connectionType: 'wifi' };
const ON_BATTERY: DeviceConditions = { charging: false, connectionType: 'wifi' };
const ON_CELLULAR: DeviceConditions = { charging: true, connectionType: 'cellular' };

let browser: Browser;
let demoServer: StaticServer;
let coordinator: TestCoordinator | null = null;
let pages: DemoPage[] = [];

/** With the coordinator's own test set on, as `pnpm start` runs it: the dashboard charts its numbers too. */
async function startCoordinator(): Promise<TestCoordinator> {
  // Every Chromium page connects from 127.0.0.1: with the default cap of 2 devices per address and
  // round, the three-page rounds below could not select their third page.
  coordinator = await startTestCoordinator({ testSet: 'mnist', maxSelectedPerAddress: 0 });
  return coordinator;
}

async function openDevices(server: TestCoordinator, devices: { seed: number; device: DeviceConditions; seedMnist?: boolean }[]): Promise<DemoPage[]> {
  const opened = await Promise.all(
    devices.map((options) => openDemoPage(browser, { demoUrl: demoServer.url, serverUrl: server.url, clientToken: CLIENT_TOKEN, ...options })),
  );
  pages.push(...opened);
  return opened;
}

/** Eligible pages test the first global model as soon as they connect: wait until that is done. */
async function settled(page: DemoPage, version: number): Promise<void> {
  await page.waitForState(`s.lastEvaluation?.modelVersion === ${version} && s.status === 'waiting' && s.personalVersion === ${version}`);
}

async function eligibleClients(server: TestCoordinator, count: number): Promise<void> {
  await waitFor(
    () => server.api<{ eligible: number }>('/api/clients'),
    (r) => r.body.eligible === count,
    20_000,
    `${count} eligible clients`,
  );
}

async function currentVersion(server: TestCoordinator): Promise<number> {
  const { body } = await server.api<{ version: number }>('/api/models/current');
  return body.version;
}

async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The activity log's messages, newest first (without their times). */
function activityLog(page: Page): Promise<string[]> {
  return page.$$eval('#log li', (items) => items.map((item) => (item.textContent ?? '').replace(item.querySelector('time')?.textContent ?? '', '').trim()));
}

/** Draws a vertical stroke (a "1") on the demo's pad with the mouse. */
async function drawOne(page: Page): Promise<void> {
  const pad = (await page.locator('#pad').boundingBox())!;
  await page.mouse.move(pad.x + pad.width * 0.52, pad.y + pad.height * 0.18);
  await page.mouse.down();
  await page.mouse.move(pad.x + pad.width * 0.5, pad.y + pad.height * 0.5, { steps: 8 });
  await page.mouse.move(pad.x + pad.width * 0.48, pad.y + pad.height * 0.82, { steps: 8 });
  await page.mouse.up();
}

describe.skipIf(!requireChromium())('the demo app in Chromium with a real coordinator', () => {
  beforeAll(async () => {
    demoServer = await serveDirectory(DEMO_DIST);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  afterEach(async () => {
    for (const page of pages) expect(page.errors.filter((e) => !e.includes('favicon'))).toEqual([]);
    await Promise.all(pages.map((page) => page.context.close()));
    pages = [];
    await coordinator?.dispose();
    coordinator = null;
  });
  afterAll(async () => {
    await browser?.close();
    await demoServer?.close();
  });

  it('three charging, idle, Wi-Fi pages take part in a round started from the dashboard', async () => {
    const server = await startCoordinator();
    const devices = await openDevices(
      server,
      [0, 1, 2].map((seed) => ({ seed, device: PLUGGED_IN_ON_WIFI })),
    );
    await Promise.all(devices.map((page) => settled(page, 1)));
    for (const page of devices) {
      const state = await page.state();
      expect(state.conditions).toEqual({ idle: 'yes', charging: 'yes', unmetered: 'yes' });
      expect(state.backend).toBe('wasm');
      expect(await page.page.textContent('#cond-network')).toBe('yes');
    }
    await eligibleClients(server, 3);

    const dashboardContext = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
    const dashboard = await dashboardContext.newPage();
    await dashboard.goto(`${server.url}/dashboard`);
    await dashboard.fill('#token', OPERATOR_TOKEN);
    await dashboard.click('#login-form button[type=submit]');
    await dashboard.waitForSelector('#app:not([hidden])');
    await dashboard.waitForFunction(() => document.getElementById('s-version')?.textContent?.includes('1'));
    await dashboard.fill('#start-form input[name=minClients]', '3');
    await dashboard.fill('#start-form input[name=targetClients]', '3');
    await dashboard.fill('#start-form input[name=deadlineSeconds]', '60');
    await dashboard.fill('#start-form input[name=epochs]', '1');
    await dashboard.click('#start-btn');
    await dashboard.waitForFunction(() => document.getElementById('start-msg')?.textContent?.startsWith('Round'));

    // Every page trains, uploads, then tests the committed version against its personal model.
    const after = await Promise.all(
      devices.map((page) =>
        page.waitForState('s.roundsTrained === 1 && s.lastEvaluation?.modelVersion === 2 && s.globalVersion === 2 && s.status === "waiting"'),
      ),
    );
    expect(await currentVersion(server)).toBe(2);
    // The pages uploaded over HTTP to the upload listener (another port: CORS), not over the socket.
    const exposition = await noKeepAliveFetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } }).then((r) => r.text());
    expect(exposition).toMatch(/flock_upload_requests_total\{result="received"\} 3\b/);
    for (const [i, state] of after.entries()) {
      // The activity log (newest first) tells it in the order it happened: the upload, then the commit.
      const log = await activityLog(devices[i]!.page);
      const uploaded = log.findIndex((line) => line.startsWith('Uploaded'));
      const committed = log.findIndex((line) => line.startsWith('Round committed'));
      expect(uploaded, log.join('\n')).toBeGreaterThan(committed);
      expect(committed, log.join('\n')).toBeGreaterThanOrEqual(0);
      expect(state.statusHistory).toContain('training');
      expect(state.bytesUploaded).toBeGreaterThan(700_000); // one float32 delta of the 2NN
      expect(state.lastEvaluation!.globalAccuracy).toBeGreaterThan(0.5);
      expect(state.lastEvaluation!.personalAccuracy).not.toBeNull();
      const shown = await devices[i]!.page.textContent('#evaluation');
      expect(shown).toContain('Global v2');
      expect(shown).toContain('Personal');
      expect(await devices[i]!.page.textContent('#global-version')).toBe('v2');
    }

    // The dashboard follows the round to the commit and charts it (local tests included).
    await dashboard.waitForFunction(() => document.getElementById('s-version')?.textContent?.includes('2'));
    await dashboard.waitForFunction(() => /committed/i.test(document.querySelector('#rounds')?.textContent ?? ''));
    expect(await dashboard.textContent('#rounds tr')).toContain('v2');
    expect(await dashboard.locator('#c-accuracy canvas').count()).toBe(1);
    expect(await dashboard.locator('#c-participants canvas').count()).toBe(1);
    // The legends show the latest point: this round's 3 participants and the devices' local tests
    // (the median across devices, its interquartile range and how many devices reported).
    await dashboard.waitForFunction(() => /accepted[:\s]*3\b/.test(document.querySelector('#c-participants .u-legend')?.textContent ?? ''));
    await dashboard.waitForFunction(
      () =>
        /global \(local eval, median\)[:\s]*\d+(\.\d+)?\s*% \(IQR \d+(\.\d+)?%–\d+(\.\d+)?%, n=[1-3]\)/.test(
          document.querySelector('#c-accuracy .u-legend')?.textContent ?? '',
        ),
      undefined,
      { timeout: 15_000 },
    );
    // The coordinator tests v2 on the MNIST test set in the background; the version table and the
    // accuracy legend show it once stored.
    const testAccuracy = (
      await waitFor(
        () => server.api<{ metrics: { testAccuracy?: number } }>('/api/models/2'),
        (r) => typeof r.body.metrics.testAccuracy === 'number',
        30_000,
        'v2 tested',
      )
    ).body.metrics.testAccuracy!;
    const shownAccuracy = `${(testAccuracy * 100).toFixed(1)}%`;
    await dashboard.waitForFunction((text) => document.querySelector('#models tr')?.textContent?.includes(text) ?? false, shownAccuracy, { timeout: 15_000 });
    await dashboard.waitForTimeout(500);
    await screenshot(dashboard, 'dashboard-after-round.png');

    // On a phone's width (390 px) the dashboard has no horizontal overflow, and idle it marks no step of the round strip.
    await dashboard.setViewportSize({ width: 390, height: 844 });
    await dashboard.waitForFunction(() => document.documentElement.clientWidth === 390);
    // The charts follow their cards' width through a ResizeObserver: give the layout a moment to settle.
    await dashboard.waitForFunction(() => document.documentElement.scrollWidth <= 390, undefined, { timeout: 5000 }).catch(() => undefined);
    const overflow = await dashboard.evaluate(() => ({
      width: document.documentElement.scrollWidth,
      wider: Array.from(document.querySelectorAll('body *'))
        .filter((node) => node.getBoundingClientRect().right > 390.5 && !node.closest('.table-wrap'))
        .map((node) => `${node.tagName}#${node.id}.${node.getAttribute('class') ?? ''}`),
    }));
    expect(overflow.width, overflow.wider.join('\n')).toBeLessThanOrEqual(390);
    expect(await dashboard.textContent('#r-body .empty')).toBe('No round in flight.');
    expect(await dashboard.locator('#r-phases li').count()).toBeGreaterThan(0);
    expect(await dashboard.locator('#r-phases li.now, #r-phases li.done, #r-phases li.good, #r-phases li.bad').count()).toBe(0);
    await screenshot(dashboard, 'dashboard-phone-after-round.png');

    // Draw a "1" on the first page so that its screenshot shows a live prediction.
    const demo = devices[0]!.page;
    await drawOne(demo);
    await demo.waitForFunction(() => /^[0-9]$/.test(document.getElementById('guess')?.textContent ?? ''));
    await devices[0]!.waitForState('s.eligible'); // idle again after drawing
    const shot = await screenshot(demo, 'demo-app-after-round.png');
    if (DOCS_SCREENSHOT) copyFileSync(shot, DOCS_SCREENSHOT);
    await dashboardContext.close();
  });

  it('three pages take part in secure rounds (X25519, then P-256): the coordinator gets masked inputs only and commits their sum', async () => {
    const server = await startCoordinator();
    const devices = await openDevices(
      server,
      [10, 11, 12].map((seed) => ({ seed, device: PLUGGED_IN_ON_WIFI })),
    );
    await Promise.all(devices.map((page) => settled(page, 1)));
    await eligibleClients(server, 3);
    // Started from the dashboard's form, its secure-aggregation box ticked, with X25519 keys.
    const dashboardContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const dashboard = await dashboardContext.newPage();
    await dashboard.goto(`${server.url}/dashboard`);
    await dashboard.fill('#token', OPERATOR_TOKEN);
    await dashboard.click('#login-form button[type=submit]');
    await dashboard.waitForSelector('#app:not([hidden])');
    await dashboard.fill('#start-form input[name=minClients]', '3');
    await dashboard.fill('#start-form input[name=targetClients]', '3');
    await dashboard.fill('#start-form input[name=overSelection]', '1');
    await dashboard.fill('#start-form input[name=deadlineSeconds]', '60');
    await dashboard.check('#secure-aggregation');
    await dashboard.selectOption('#secure-aggregation-key-agreement', 'X25519');
    await dashboard.click('#start-btn');
    await dashboard.waitForFunction(() => document.getElementById('start-msg')?.textContent?.startsWith('Round'));
    await dashboardContext.close();
    const started = { body: { id: (await server.api<{ id: string }[]>('/api/rounds?limit=1')).body[0]!.id } };
    // Each page trains, runs the four secure phases in the browser (WebCrypto), and adopts the committed version.
    await Promise.all(devices.map((page) => page.waitForState('s.roundsTrained === 1 && s.globalVersion === 2 && s.status === "waiting"', 90_000)));
    const round = await server.roundEnded(started.body.id, 30_000);
    expect(round.status, round.error ?? '').toBe('committed');
    expect(round.params.secureAggregation).toMatchObject({ clipNorm: 10, thresholdFraction: 0.5, phaseTimeoutMs: 30_000, keyAgreement: 'X25519' });
    expect(round.metrics.accepted).toBe(3);
    expect(round.metrics.totalExamples).toBeGreaterThan(0);
    // A second secure round with the default P-256 keys, started over the API.
    const second = await server.api<{ id: string }>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 3, targetClients: 3, overSelection: 1, deadlineSeconds: 60, secureAggregation: true }),
    });
    expect(second.status).toBe(201);
    const p256 = await server.roundEnded(second.body.id, 90_000);
    expect(p256.status, p256.error ?? '').toBe('committed');
    expect(p256.params.secureAggregation).toMatchObject({ keyAgreement: 'P-256' });
    expect(p256.metrics.accepted).toBe(3);
    const metrics = await noKeepAliveFetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } }).then((r) => r.text());
    for (const event of ['secagg:advertise', 'secagg:shares', 'secagg:masked', 'secagg:reveal']) {
      expect(metrics).toMatch(new RegExp(`flock_secagg_messages_total\\{event="${event}",result="accepted",reason=""\\} 6`));
    }
    // No page uploaded its delta in the clear.
    expect(metrics).not.toMatch(/flock_uploads_total\{result="accepted"/);
  }, 240_000);

  it('says a page is not eligible until it holds enough examples, then eligible once seeded', async () => {
    const server = await startCoordinator();
    const [device] = await openDevices(server, [{ seed: 9, device: PLUGGED_IN_ON_WIFI, seedMnist: false }]);
    const before = await device!.waitForState('s.status === "no data" && s.eligible');
    expect(before.exampleCount).toBe(0);
    // The device's conditions are fine, but with no examples it cannot be picked: header and box agree.
    expect(await device!.page.textContent('#status')).toBe('add 10 examples to join');
    expect(await device!.page.textContent('#eligibility')).toBe('Not eligible yet: add 10 examples (draw and label digits, or seed MNIST) to join training.');
    expect(await device!.page.getAttribute('#eligibility', 'class')).toBe('eligibility no');
    await seedMnist(device!);
    await device!.waitForState('s.status === "waiting" && s.eligible'); // idle again after the click
    expect(await device!.page.textContent('#eligibility')).toBe('Eligible: this device may be picked for training.');
    await eligibleClients(server, 1);
  });

  it('never selects a page on battery or cellular, and a page unplugged mid-training uploads nothing while the round commits', async () => {
    const server = await startCoordinator();
    const [steady1, steady2, unplugged, onBattery, onCellular] = await openDevices(server, [
      { seed: 3, device: PLUGGED_IN_ON_WIFI },
      { seed: 4, device: PLUGGED_IN_ON_WIFI },
      { seed: 5, device: PLUGGED_IN_ON_WIFI },
      { seed: 6, device: ON_BATTERY },
      { seed: 8, device: ON_CELLULAR },
    ]);
    await Promise.all([steady1!, steady2!, unplugged!].map((page) => settled(page, 1)));
    const batteryState = await onBattery!.state();
    expect(batteryState.conditions.charging).toBe('no');
    expect(batteryState.eligible).toBe(false);
    expect(await onBattery!.page.textContent('#cond-charging')).toBe('no');
    const cellularState = await onCellular!.state();
    expect(cellularState.conditions).toEqual({ idle: 'yes', charging: 'yes', unmetered: 'no' });
    expect(cellularState.eligible).toBe(false);
    await eligibleClients(server, 3);

    // Unplug as soon as the page starts training (checked every few ms; training yields per batch).
    await unplugged!.page.evaluate(() => {
      const timer = setInterval(() => {
        const demo = (window as unknown as { flockDemo: { state: { status: string } } }).flockDemo;
        if (demo.state.status === 'training') {
          clearInterval(timer);
          (window as unknown as { flockTestDevice: { setCharging(c: boolean): void } }).flockTestDevice.setCharging(false);
        }
      }, 2);
    });
    const { status, body } = await server.api<{ id: string }>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 2, targetClients: 3, overSelection: 1, deadlineSeconds: 60, epochs: 3, batchSize: 10, learningRate: 0.05 }),
    });
    expect(status).toBe(201);
    const ended = await server.roundEnded(body.id, 60_000);
    expect(ended.status).toBe('committed');
    expect(ended.metrics.selected).toBe(3);
    expect(ended.metrics.accepted).toBe(2);
    expect(await currentVersion(server)).toBe(2);

    const unpluggedState = await unplugged!.waitForState('s.roundsAbandoned === 1');
    expect(unpluggedState.statusHistory).toContain('training');
    expect(unpluggedState.bytesUploaded).toBe(0);
    expect(unpluggedState.roundsTrained).toBe(0);
    expect(unpluggedState.conditions.charging).toBe('no');
    for (const page of [steady1!, steady2!]) expect((await page.waitForState('s.roundsTrained === 1')).bytesUploaded).toBeGreaterThan(0);
    await screenshot(unplugged!.page, 'demo-app-unplugged-mid-training.png');
    for (const page of [onBattery!, onCellular!]) {
      // Not eligible, so never trained nor tested v2 (that is work too), but the page knows v2 exists.
      const final = await page.waitForState('s.globalVersion === 2');
      expect(final.statusHistory).not.toContain('training');
      expect(final.bytesUploaded).toBe(0);
      expect(await page.page.textContent('#global-version')).toBe('v2');
    }
  });

  it('lets the user choose Ditto: the choice survives the reload it needs, and the page shows global vs personal on its own held-out examples', async () => {
    const server = await startCoordinator();
    const [device] = await openDevices(server, [{ seed: 5, device: PLUGGED_IN_ON_WIFI }]);
    await settled(device!, 1);
    expect(await device!.page.inputValue('#personalization-method')).toBe('fine-tune');
    // The SDK takes its method at construction: the page remembers the choice and reloads.
    await Promise.all([device!.page.waitForEvent('load'), device!.page.selectOption('#personalization-method', 'ditto')]);
    const reloaded = wrapDemoPage(device!.context, device!.page, device!.errors);
    await reloaded.waitForState('s.ready && s.status === "waiting"');
    expect(await reloaded.page.inputValue('#personalization-method')).toBe('ditto');
    expect(await reloaded.page.textContent('#personalization-note')).toContain('pulled towards each new global model');
    await eligibleClients(server, 1);
    const { body } = await server.api<{ id: string }>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 1, targetClients: 1, deadlineSeconds: 60, epochs: 1, batchSize: 10, learningRate: 0.05 }),
    });
    expect((await server.roundEnded(body.id, 60_000)).status).toBe('committed');
    const state = await reloaded.waitForState('s.lastEvaluation?.modelVersion === 2 && s.status === "waiting"');
    // Ditto keeps its own model (moved towards version 2, not replaced by it), tested beside the global one.
    expect(state.lastEvaluation).toMatchObject({ modelVersion: 2, adopted: false });
    expect(state.lastEvaluation!.personalAccuracy).not.toBeNull();
    const shown = await reloaded.page.textContent('#evaluation');
    expect(shown).toContain('Global v2');
    expect(shown).toContain('Personal');
    expect(shown).toContain('Kept the personal model');
  });

  it('keeps its identity and the personalized model across a reload, and predicts the same digits', async () => {
    const server = await startCoordinator();
    const [device] = await openDevices(server, [{ seed: 7, device: PLUGGED_IN_ON_WIFI }]);
    await settled(device!, 1);
    await eligibleClients(server, 1);
    const { body } = await server.api<{ id: string }>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 1, targetClients: 1, deadlineSeconds: 60, epochs: 1, batchSize: 10, learningRate: 0.05 }),
    });
    expect((await server.roundEnded(body.id, 60_000)).status).toBe('committed');
    const before = await device!.waitForState('s.lastEvaluation?.modelVersion === 2 && s.status === "waiting"');
    expect(before.clientId).toMatch(/^[A-Za-z0-9_-]{43}$/); // the thumbprint of the device key
    // The key pair lives in IndexedDB as CryptoKeys; the private one cannot be read out.
    expect(await storedDeviceKey(device!.page)).toEqual({ privateType: 'private', privateExtractable: false, algorithm: 'ECDSA', curve: 'P-256' });
    const digitsBefore = await device!.predictDigits(50);
    // A drawn and labelled example is stored on the device too (28x28, centred like MNIST).
    await drawOne(device!.page);
    await device!.page.click('#labels button[data-digit="1"]');
    await device!.waitForState(`s.drawnCount === 1 && s.exampleCount === ${before.exampleCount + 1}`);

    await device!.page.reload();
    const reloaded = wrapDemoPage(device!.context, device!.page, device!.errors);
    const after = await reloaded.waitForState('s.ready');
    expect(after.exampleCount).toBe(before.exampleCount + 1); // examples persisted in IndexedDB
    // The coordinator welcomes the reloaded page under the same id: it proved it holds the same key.
    expect((await reloaded.waitForState('s.clientId !== null && s.status === "waiting"')).clientId).toBe(before.clientId);
    expect(after.drawnCount).toBe(1);
    expect(after.personalVersion).toBe(before.personalVersion);
    expect(after.lastEvaluation?.modelVersion).toBe(2);
    const digitsAfter = await reloaded.predictDigits(50);
    expect(digitsAfter).toEqual(digitsBefore);
    // The personalized model is a real digit classifier (MNIST test images; labels are the slice's).
    expect(new Set(digitsAfter).size).toBeGreaterThan(5);
  });
});

/** What the SDK's IndexedDB store holds as the device key (read in the page with the raw IndexedDB API). */
function storedDeviceKey(page: Page): Promise<{ privateType: string; privateExtractable: boolean; algorithm: string; curve: string }> {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('flock-client-sdk');
        open.onerror = () => reject(open.error ?? new Error('indexedDB.open failed'));
        open.onsuccess = () => {
          const read = open.result.transaction('keys').objectStore('keys').get('device');
          read.onerror = () => reject(read.error ?? new Error('reading the device key failed'));
          read.onsuccess = () => {
            const { privateKey } = read.result as CryptoKeyPair;
            open.result.close();
            resolve({
              privateType: privateKey.type,
              privateExtractable: privateKey.extractable,
              algorithm: privateKey.algorithm.name,
              curve: (privateKey.algorithm as EcKeyAlgorithm).namedCurve,
            });
          };
        };
      }),
  );
}
