import { existsSync } from 'node:fs';

/** Debian's Chromium (`apt-get install -y chromium`), driven with playwright-core: never a downloaded browser. */
export const CHROMIUM = '/usr/bin/chromium';
/** Headless, no sandbox (containers), and none of the browser's own network traffic. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** CI sets CI=true; any value but `false` or `0` counts. */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}

/**
 * For `describe.skipIf(!requireChromium())`. Without Chromium a developer's run skips the suite and
 * says why; under CI it throws, failing the file, since a skipped browser suite would pass having
 * tested nothing (as a missing PostgreSQL fails the storage tests).
 */
export function requireChromium(path = CHROMIUM, env: NodeJS.ProcessEnv = process.env): boolean {
  if (existsSync(path)) return true;
  const reason = `Chromium is missing at ${path} (apt-get install -y chromium)`;
  if (inCi(env)) throw new Error(`${reason}: under CI the browser suites must run, not skip.`);
  console.warn(`Skipping this browser suite: ${reason}. Under CI=true it fails instead.`);
  return false;
}
