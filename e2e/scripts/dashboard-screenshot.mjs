// Takes docs/dashboard.png from a real federation: the built coordinator (`node server/dist/main.js`,
// SQLite in a temp dir, its MNIST test set on), `pnpm simulate --server` against it (real SDK
// clients training on MNIST partitions, with dropouts and local tests), and the dashboard in
// Debian's Chromium, shot while a round is in flight after several have committed.
// Usage: pnpm build && node e2e/scripts/dashboard-screenshot.mjs [output.png]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const output = resolve(process.argv[2] ?? join(root, 'docs', 'dashboard.png'));
const ROUNDS = 12;
const tokens = { FLOCK_CLIENT_TOKEN: 'screenshot-client-token-0123', FLOCK_OPERATOR_TOKEN: 'screenshot-operator-token-0123' };
const dataDir = mkdtempSync(join(tmpdir(), 'flock-screenshot-'));
const children = [];

function start(args, env = {}) {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...tokens, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

try {
  const coordinator = start([join(root, 'server', 'dist', 'main.js')], { PORT: '0', HOST: '127.0.0.1', FLOCK_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
  const url = await new Promise((resolveUrl, reject) => {
    let seen = '';
    coordinator.stderr.on('data', (chunk) => {
      seen += chunk;
      const match = /Flock coordinator on (http:\/\/\S+)/.exec(seen);
      if (match) resolveUrl(match[1]);
    });
    coordinator.on('exit', (code) => reject(new Error(`the coordinator exited with ${code}:\n${seen}`)));
  });
  console.log(`coordinator at ${url}`);
  const simulation = start([
    join(root, 'server', 'dist', 'simulation', 'main.js'),
    ...['--server', url, '--client-token', tokens.FLOCK_CLIENT_TOKEN, '--operator-token', tokens.FLOCK_OPERATOR_TOKEN],
    ...[
      '--init',
      'pretrained',
      '--clients',
      '24',
      '--examples-per-client',
      '600',
      '--fraction',
      '0.25',
      '--rounds',
      String(ROUNDS + 1),
      '--partition',
      'dirichlet',
      '--alpha',
      '0.5',
    ],
    ...['--learning-rate', '0.05', '--dropout', '0.15', '--over-selection', '1.3', '--local-eval', '0.5', '--no-progress', '--out', join(dataDir, 'sim')],
  ]);
  simulation.stderr.on('data', (chunk) => process.stderr.write(chunk));

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  await page.goto(`${url}/dashboard`);
  await page.fill('#token', tokens.FLOCK_OPERATOR_TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#app:not([hidden])');
  // After ROUNDS commits, catch the next round while devices report.
  await page.waitForFunction((n) => (document.querySelector('#rounds')?.textContent?.match(/Committed/gi)?.length ?? 0) >= n, ROUNDS, {
    timeout: 900_000,
    polling: 500,
  });
  // ... once half of its updates are in (the progress bar and the counters move).
  await page.waitForFunction(
    () =>
      /reporting/i.test(document.querySelector('#r-phases .now')?.textContent ?? '') &&
      Number(/accepted\s*(\d+)/i.exec(document.getElementById('r-body')?.textContent ?? '')?.[1] ?? 0) >= 3,
    undefined,
    { timeout: 120_000, polling: 50 },
  );
  await page.screenshot({ path: output, fullPage: true });
  console.log(`wrote ${output}`);
  await browser.close();
} finally {
  for (const child of children) child.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
