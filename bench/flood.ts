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
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ClientEvent, PROTOCOL_VERSION, ServerEvent, proofMessage, thumbprintInput } from '../client-sdk/src/protocol/index.js';
import { noKeepAliveFetch } from '../server/src/simulation/http-fetch.js';
import { machineInfo, median } from './lib/measure.js';

const CLIENT_TOKEN = 'bench-flood-client-token-0123456789';
const OPERATOR_TOKEN = 'bench-flood-operator-token-0123456789';
const MAIN = resolve(import.meta.dirname, '../server/dist/main.js');
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

/** The little of socket.io-client used here (a dependency of the server, not of the root package). */
interface FloodSocket {
  connected: boolean;
  emit(event: string, ...args: unknown[]): void;
  once(event: string, listener: (...args: never[]) => void): void;
  disconnect(): void;
}
type Io = (url: string, options: Record<string, unknown>) => FloodSocket;
const { io } = createRequire(resolve(import.meta.dirname, '../server/package.json'))('socket.io-client') as { io: Io };

/** A device with a fresh key that proved it (handshake, challenge, signature) and was welcomed. */
async function connectDevice(url: string): Promise<FloodSocket> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { x, y } = publicKey.export({ format: 'jwk' });
  const jwk = { kty: 'EC', crv: 'P-256', x: x!, y: y! } as const;
  const clientId = createHash('sha256').update(thumbprintInput(jwk)).digest('base64url');
  const socket = io(url, {
    auth: { token: CLIENT_TOKEN, publicKey: jwk, protocolVersion: PROTOCOL_VERSION },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  await new Promise<void>((welcomed, refused) => {
    socket.once(ServerEvent.welcome, () => welcomed());
    socket.once('connect_error', (error: Error) => refused(error));
    socket.once(ServerEvent.challenge, ({ challenge }: { challenge: Uint8Array }) => {
      socket.emit(ClientEvent.proof, {
        signature: sign('sha256', proofMessage(new Uint8Array(challenge), clientId), { key: privateKey, dsaEncoding: 'ieee-p1363' }),
      });
    });
  });
  return socket;
}

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

async function startCoordinator(limits: boolean): Promise<{ child: ChildProcess; url: string; close: () => void }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'flock-flood-'));
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      FLOCK_DATA_DIR: dataDir,
      FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
      FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
      FLOCK_DEFAULT_MODEL_EXAMPLES: '600',
      FLOCK_TEST_SET: 'none',
      FLOCK_EVENT_RATE_LIMITS: limits ? '' : 'off',
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`coordinator did not start:\n${output}`)), 120_000);
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Flock coordinator on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`coordinator exited (${code}):\n${output}`)));
  });
  return {
    child,
    url,
    close: () => {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

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
  const coordinator = await startCoordinator(limits);
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
