/**
 * One device flooding the coordinator with events, and what an operator's `/api/health` sees
 * meanwhile: health latency (p50 / p99 / max) while nobody floods and while one socket sends
 * 22,000 `client:conditions` or 22,000 `model:evaluation` events, with the per-socket rate limits
 * on (the default) and off (`FLOCK_EVENT_RATE_LIMITS=off`, the coordinator as it was before),
 * measured side by side in one run. The flooder reconnects whenever it is disconnected and keeps
 * going until it has emitted all its events on open sockets (a persistent attacker).
 *
 *   pnpm build && pnpm bench:flood              # ~1-2 min on 2 cores
 *   pnpm bench:flood --events 5000 --repeat 1   # quicker
 *
 * Three processes: the built coordinator (`server/dist/main.js`), the flooder (this file with
 * `--flooder`) and this driver, which probes health one request at a time (no keep-alive) and
 * prints Markdown to stdout.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ClientEvent } from '../client-sdk/src/protocol/index.js';
import { noKeepAliveFetch } from '../server/src/simulation/http-fetch.js';
import { connectDevice, OPERATOR_TOKEN, startCoordinator } from './lib/coordinator-process.js';
import { machineInfo, median } from './lib/measure.js';

const FLOODS = ['none', 'conditions', 'evaluation'] as const;
const TAIL_MS = 2_000;
type Flood = (typeof FLOODS)[number];

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '22000' },
    repeat: { type: 'string', default: '2' },
    flooder: { type: 'boolean', default: false },
    url: { type: 'string' },
    flood: { type: 'string' },
  },
});

// ------------------------------------------------------------------ the flooder process

interface FloodResult {
  emitted: number;
  connections: number;
  seconds: number;
}

/** Emits `total` events on open sockets, in chunks (so that it hears of a disconnect), reconnecting when closed. */
async function flood(url: string, kind: Exclude<Flood, 'none'>, total: number): Promise<FloodResult> {
  const started = performance.now();
  let emitted = 0;
  let connections = 0;
  while (emitted < total) {
    const socket = await connectDevice(url);
    connections++;
    while (emitted < total && socket.connected) {
      for (let i = 0; i < 500 && emitted < total; i++, emitted++) {
        if (kind === 'conditions') socket.emit(ClientEvent.conditions, { eligible: i % 2 === 0, reasons: i % 2 === 0 ? [] : ['not_idle'] });
        else
          socket.emit(ClientEvent.evaluation, {
            modelVersion: 1,
            numExamples: 100,
            globalLoss: 0.3,
            globalAccuracy: 0.9,
            personalLoss: null,
            personalAccuracy: null,
          });
      }
      await new Promise((done) => setImmediate(done));
    }
    socket.disconnect();
  }
  return { emitted, connections, seconds: (performance.now() - started) / 1000 };
}

// ------------------------------------------------------------------ the driver

function runFlooder(url: string, kind: Exclude<Flood, 'none'>, events: number): Promise<FloodResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, '--flooder', '--url', url, '--flood', kind, '--events', String(events)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolveResult, reject) => {
    child.once('exit', (code) => (code === 0 ? resolveResult(JSON.parse(out) as FloodResult) : reject(new Error(`flooder exited ${code}`))));
  });
}

/** Health latencies (ms), one request at a time with a 5 ms pause, until `until` resolves (and at least `minProbes`). */
async function probeHealth(url: string, until: Promise<unknown>, minProbes: number): Promise<number[]> {
  let done = false;
  // A failed flood ends the probing too; the caller awaits it and reports the error.
  until.then(
    () => (done = true),
    () => (done = true),
  );
  const latencies: number[] = [];
  while (!done || latencies.length < minProbes) {
    const start = performance.now();
    const response = await noKeepAliveFetch(`${url}/api/health`);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`health answered ${response.status}`);
    latencies.push(performance.now() - start);
    await new Promise((pause) => setTimeout(pause, 5));
  }
  return latencies;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function droppedAndDisconnected(url: string): Promise<{ dropped: number; disconnected: number }> {
  const text = await (await noKeepAliveFetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } })).text();
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`) && line.includes('namespace="devices"'))
      .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  return { dropped: sum('flock_socket_events_dropped_total'), disconnected: sum('flock_sockets_disconnected_total') };
}

interface Row {
  limits: boolean;
  flood: Flood;
  latencies: number[];
  result: FloodResult | null;
  dropped: number;
  disconnected: number;
}

async function measure(limits: boolean, kind: Flood, events: number): Promise<Row> {
  const coordinator = await startCoordinator({ FLOCK_EVENT_RATE_LIMITS: limits ? '' : 'off' }, 'flood');
  try {
    await probeHealth(coordinator.url, Promise.resolve(), 20); // warm-up
    const before = await droppedAndDisconnected(coordinator.url);
    const flooding = kind === 'none' ? new Promise((wait) => setTimeout(wait, 3_000)) : runFlooder(coordinator.url, kind, events);
    // Probing goes on for TAIL_MS after the flooder is done: the coordinator may still be working through what it received.
    const latencies = await probeHealth(
      coordinator.url,
      flooding.then(() => new Promise((wait) => setTimeout(wait, TAIL_MS))),
      50,
    );
    const result = kind === 'none' ? null : ((await flooding) as FloodResult);
    const after = await droppedAndDisconnected(coordinator.url);
    return { limits, flood: kind, latencies, result, dropped: after.dropped - before.dropped, disconnected: after.disconnected - before.disconnected };
  } finally {
    coordinator.close();
  }
}

async function main(): Promise<void> {
  const events = Number(args.events);
  if (args.flooder) {
    process.stdout.write(JSON.stringify(await flood(args.url!, args.flood as Exclude<Flood, 'none'>, events)));
    process.exit(0);
  }
  const repeat = Number(args.repeat);
  const rows: Row[] = [];
  for (let r = 0; r < repeat; r++) {
    for (const limits of [true, false]) {
      for (const kind of FLOODS) {
        process.stderr.write(`run ${r + 1}/${repeat}: limits ${limits ? 'on' : 'off'}, flood ${kind}\n`);
        rows.push(await measure(limits, kind, events));
      }
    }
  }
  const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
  const lines = [
    `# Health latency under an event flood from one socket`,
    '',
    `\`pnpm bench:flood --events ${events} --repeat ${repeat}\`; ${JSON.stringify(machineInfo())}; load average at the end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}.`,
    '',
    `Each row is one coordinator process (fresh data directory). Health is probed one request at a time from the flood's start until ${TAIL_MS / 1000} s after the flooder is done (3 s without a flood). Probes go one at a time, so a stall of the event loop shows as one long probe: max is the longest stall seen. Max ratio: max under flood over max without flood, same limits, same repetition. Slow: probes over 100 ms.`,
    '',
    '| rep | rate limits | flood | health probes | p50 ms | p99 ms | max ms | slow | max ratio | events emitted | connections used | flood seconds | dropped (counted) | disconnected for abuse |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  rows.forEach((row, index) => {
    const rep = Math.floor(index / (FLOODS.length * 2)) + 1;
    const idle = rows.find((other, j) => Math.floor(j / (FLOODS.length * 2)) + 1 === rep && other.limits === row.limits && other.flood === 'none')!;
    const p99 = quantile(row.latencies, 0.99);
    const max = Math.max(...row.latencies);
    lines.push(
      `| ${rep} | ${row.limits ? 'on (default)' : 'off'} | ${row.flood === 'none' ? 'none' : `${row.result?.emitted ?? 0} × ${row.flood}`} | ${row.latencies.length} | ${fmt(quantile(row.latencies, 0.5))} | ${fmt(p99)} | ${fmt(max)} | ${row.latencies.filter((ms) => ms > 100).length} | ${(max / Math.max(...idle.latencies)).toFixed(2)} | ${row.result?.emitted ?? 0} | ${row.result?.connections ?? 0} | ${row.result ? row.result.seconds.toFixed(1) : '-'} | ${row.dropped} | ${row.disconnected} |`,
    );
  });
  lines.push('', '| flood | median longest stall, limits on (ms) | median longest stall, limits off (ms) | off / on |', '|---|---|---|---|');
  for (const kind of FLOODS) {
    const longest = (limits: boolean) => median(rows.filter((row) => row.flood === kind && row.limits === limits).map((row) => Math.max(...row.latencies)));
    lines.push(`| ${kind} | ${fmt(longest(true))} | ${fmt(longest(false))} | ${(longest(false) / longest(true)).toFixed(1)} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
