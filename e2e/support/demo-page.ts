import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { DemoHooks, DemoState } from '../../demo-app/src/demo-state.js';

export type { DemoState };

export { CHROMIUM, CHROMIUM_ARGS } from '../../server/test/support/chromium.js';

/** Device conditions a page starts with (overridden browser APIs). */
export interface DeviceConditions {
  charging: boolean;
  connectionType: 'wifi' | 'cellular' | 'ethernet';
  saveData?: boolean;
}

interface DemoWindow {
  flockDemo?: DemoHooks;
  flockTestDevice?: { setCharging(charging: boolean): void; setConnection(type: string, saveData: boolean): void };
}

/**
 * Runs before the page's scripts: replaces navigator.getBattery and navigator.connection with fakes
 * the test controls through `window.flockTestDevice`, dispatching the events the SDK listens to.
 */
function installFakeDevice(initial: DeviceConditions): void {
  const battery = Object.assign(new EventTarget(), { charging: initial.charging, level: 0.8, chargingTime: 0, dischargingTime: Infinity });
  const connection: EventTarget & { type: string; saveData: boolean } = Object.assign(new EventTarget(), {
    type: initial.connectionType,
    saveData: initial.saveData ?? false,
    effectiveType: '4g',
  });
  Object.defineProperty(Navigator.prototype, 'getBattery', { configurable: true, value: () => Promise.resolve(battery) });
  Object.defineProperty(Navigator.prototype, 'connection', { configurable: true, get: () => connection });
  (window as unknown as DemoWindow).flockTestDevice = {
    setCharging(charging: boolean): void {
      battery.charging = charging;
      battery.dispatchEvent(new Event('chargingchange'));
    },
    setConnection(type: string, saveData: boolean): void {
      connection.type = type;
      connection.saveData = saveData;
      connection.dispatchEvent(new Event('change'));
    },
  };
}

export interface DemoPage {
  context: BrowserContext;
  page: Page;
  errors: string[];
  state(): Promise<DemoState>;
  waitForState(predicate: string, timeoutMs?: number): Promise<DemoState>;
  predictDigits(count: number): Promise<number[]>;
  setCharging(charging: boolean): Promise<void>;
}

export interface OpenDemoOptions {
  demoUrl: string;
  serverUrl: string;
  clientToken: string;
  seed: number;
  device: DeviceConditions;
  idleAfterMs?: number;
  /** Click "Seed with MNIST" once the page is ready (default true). */
  seedMnist?: boolean;
}

export function demoPageUrl(options: OpenDemoOptions): string {
  const params = new URLSearchParams({
    server: options.serverUrl,
    token: options.clientToken,
    seed: String(options.seed),
    idleAfterMs: String(options.idleAfterMs ?? 500),
    unknown: 'ineligible',
  });
  return `${options.demoUrl}/?${params}`;
}

/** Opens the demo app in its own browser context (own IndexedDB), fakes its device, seeds MNIST (unless told not to). */
export async function openDemoPage(browser: Browser, options: OpenDemoOptions): Promise<DemoPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  await context.addInitScript(installFakeDevice, options.device);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  await page.goto(demoPageUrl(options));
  const demo = wrapDemoPage(context, page, errors);
  await demo.waitForState('s.ready');
  if (options.seedMnist ?? true) await seedMnist(demo);
  return demo;
}

/** Clicks "Seed with MNIST" and waits for its examples. */
export async function seedMnist(demo: DemoPage): Promise<void> {
  await demo.page.click('#seed-mnist');
  await demo.waitForState('s.exampleCount >= 400');
}

export function wrapDemoPage(context: BrowserContext, page: Page, errors: string[]): DemoPage {
  const state = (): Promise<DemoState> => page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as DemoWindow).flockDemo!.state)) as DemoState);
  return {
    context,
    page,
    errors,
    state,
    /** Waits until `predicate`, an expression over the demo state `s`, holds. */
    async waitForState(predicate: string, timeoutMs = 60_000): Promise<DemoState> {
      await page.waitForFunction(
        (expression) => {
          const s = (window as unknown as DemoWindow).flockDemo?.state;
          // The predicate is the test's own code, sent to the page as text (closures do not cross into it).
          // eslint-disable-next-line @typescript-eslint/no-implied-eval, @typescript-eslint/no-unsafe-call
          return s !== undefined && Boolean(new Function('s', `return (${expression});`)(s));
        },
        predicate,
        { timeout: timeoutMs, polling: 50 },
      );
      return state();
    },
    predictDigits: (count) => page.evaluate((n) => (window as unknown as DemoWindow).flockDemo!.predictDigits(n), count),
    setCharging: (charging) => page.evaluate((value) => (window as unknown as DemoWindow).flockTestDevice!.setCharging(value), charging),
  };
}
