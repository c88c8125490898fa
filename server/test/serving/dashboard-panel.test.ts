/**
 * The dashboard's Serving panel in Debian's Chromium, against a coordinator serving real traffic:
 * the version served, the request count, latency, and the request-rate chart drawn from
 * `GET /api/serving`. Skipped only where /usr/bin/chromium is absent, never under CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from '../support/chromium.js';
import { OPERATOR_TOKEN, type TestCoordinator } from '../support/coordinator.js';
import { servingReady, startServingCoordinator, tinyRows, v2 } from './serving-helpers.js';

describe.skipIf(!requireChromium())('dashboard Serving panel', () => {
  let coordinator: TestCoordinator;
  let browser: Browser;

  beforeAll(async () => {
    coordinator = await startServingCoordinator();
    await servingReady(coordinator.url);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await coordinator?.dispose();
  });

  it('shows the served version, requests, latency and the rate chart', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${coordinator.url}/dashboard`);
    await page.fill('#token', OPERATOR_TOKEN);
    await page.click('#login-form button[type=submit]');
    let sent = 0;
    const traffic = setInterval(() => {
      sent++;
      v2(coordinator.url, '/v2/models/global/infer', { inputs: [{ name: 'input', shape: [1, 16], datatype: 'FP32', data: tinyRows(1, sent)[0] }] }).catch(
        () => undefined,
      );
    }, 50);
    try {
      await page.waitForFunction(() => document.getElementById('sv-version')?.textContent === 'v1', undefined, { timeout: 15_000 });
      await page.waitForFunction(() => document.querySelector('#sv-chart canvas') !== null, undefined, { timeout: 15_000 });
    } finally {
      clearInterval(traffic);
    }
    expect(Number(await page.textContent('#sv-requests'))).toBeGreaterThan(0);
    expect(await page.textContent('#sv-latency')).toMatch(/^[\d.]+ \/ [\d.]+ ms$/);
    expect(await page.textContent('#sv-batching')).toMatch(/1 worker, batch ≤ 64/);
    expect(await page.textContent('#sv-actions')).toBe('none');
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);
});
