/**
 * `pnpm loadtest`: many raw protocol devices against one or more coordinator processes, measured
 * from outside (issue 12). Held connections, handshake rate, round start to commit, uploads/s,
 * event-loop delay p99 (scraped from each coordinator's /metrics while the round runs), RSS per
 * connection, disconnects and lost acknowledgements.
 *
 *   pnpm build && pnpm loadtest --devices 10000 --model tiny --upload-fraction 1 --pace both
 *   pnpm loadtest --devices 30000 --processes 3 --postgres postgres://... --redis redis://... --json
 *   pnpm loadtest ... --processes 3 --kill non-leader|leader   (kill -9 mid-round after the measured rounds, kill.ts)
 *
 * Devices live in generator child processes (generator.ts), at most --devices-per-generator each
 * (one process may hold 20,000 file descriptors here), each from its own loopback address
 * (127.x.y.z) so that the per-address caps do not bite. With --pace both, the whole run is made
 * twice, pace steering on then off, with fresh processes: the ratios compare runs of one command.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeTinyModel } from '../../server/test/support/tiny-model.js';
import type { CoordinatorProcess } from '../lib/coordinator-process.js';
import { connectedCount, eventLoopDelayP99Ms, gcTotals, roundDetails, scrape, startCoordinators, startRound, uploadRequests } from './coordinators.js';
import { Generator, sumStats } from './generators.js';
import { killMidRound, type KillResult, type KillTarget } from './kill.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    processes: { type: 'string', default: '1' },
    model: { type: 'string', default: 'tiny' },
    'upload-fraction': { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    pace: { type: 'string', default: 'on' },
    uploads: { type: 'string', default: 'listener' },
    'deadline-seconds': { type: 'string', default: '120' },
    'devices-per-generator': { type: 'string', default: '5000' },
    'connect-concurrency': { type: 'string', default: '64' },
    'settle-seconds': { type: 'string', default: '21' },
    'max-uploads-per-second': { type: 'string' },
    'coordinator-node-options': { type: 'string' },
    postgres: { type: 'string' },
    redis: { type: 'string' },
    kill: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const devices = positiveInt('devices');
const processes = positiveInt('processes');
const rounds = positiveInt('rounds');
const deadlineSeconds = positiveInt('deadline-seconds');
const perGenerator = Math.min(15_000, positiveInt('devices-per-generator'));
const concurrency = positiveInt('connect-concurrency');
const settleSeconds = Number(args['settle-seconds']);
const uploadFraction = Number(args['upload-fraction']);
if (!(uploadFraction > 0 && uploadFraction <= 1)) throw new Error('--upload-fraction must be in (0, 1]');
if (args.model !== 'tiny' && args.model !== '2nn') throw new Error('--model must be tiny or 2nn');
const killTarget = args.kill as KillTarget | undefined;
if (killTarget !== undefined && killTarget !== 'leader' && killTarget !== 'non-leader') throw new Error('--kill must be leader or non-leader');
if (killTarget && processes < 2) throw new Error('--kill needs --processes 2 or more');
const paceModes = { on: [true], off: [false], both: [true, false] }[args.pace as 'on' | 'off' | 'both'];
if (args.uploads !== 'listener' && args.uploads !== 'socket') throw new Error('--uploads must be listener or socket');
const uploads = args.uploads;
if (!paceModes) throw new Error('--pace must be on, off or both');

function positiveInt(name: keyof typeof args): number {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

// ------------------------------------------------------------------ one run

interface RoundResult {
  status: string;
  selected: number;
  uploadsAccepted: number;
  commitSeconds: number;
  configureSeconds: number | null;
  uploadsPerSecond: number;
  eventLoopDelayP99Ms: number;
  /** The coordinators' CPU over the round (user + system, from /proc), per accepted upload. */
  cpuMsPerUpload: number;
  /** Garbage collections in the first coordinator during the round (major: mark-compact; minor: scavenges). */
  gc: { major: { count: number; seconds: number }; minor: { count: number; seconds: number } };
  /** The machine's 1-minute load average at the round's end: other work shares the cores. */
  loadAverage: number;
  lostAcks: number;
  rejected: Record<string, number>;
  paced: number;
  /** Uploads the listener received over HTTP, and requests it turned away as busy (those devices uploaded over the socket). */
  httpUploads: { received: number; busy: number };
}

interface RunResult {
  pace: boolean;
  devices: number;
  processes: number;
  model: string;
  uploadFraction: number;
  connected: number;
  connectFailed: number;
  idleEventLoopDelayP99Ms: number;
  handshakesPerSecond: number;
  rssPerConnectionKB: number;
  rounds: RoundResult[];
  uploadsAccepted: number;
  commitSeconds: number;
  eventLoopDelayP99Ms: number;
  disconnects: number;
  lostAcks: number;
  /** --kill: what a kill -9 mid-round did, after the measured rounds. */
  kill: KillResult | null;
}

/** The worst event-loop delay p99 any coordinator reports (of its last complete window), read every second until `done` settles and once after. */
async function watchEventLoop(coordinators: CoordinatorProcess[], done: Promise<unknown>): Promise<number> {
  let finished = false;
  done.then(
    () => (finished = true),
    () => (finished = true),
  );
  let worst = 0;
  const started = Date.now();
  while (!finished) {
    const readings = await Promise.all(coordinators.map((c) => eventLoopDelayP99Ms(c.url).catch(() => NaN)));
    for (const reading of readings) if (Number.isFinite(reading)) worst = Math.max(worst, reading);
    if (process.env.LOADTEST_TRACE) say(`  ${((Date.now() - started) / 1000).toFixed(1)} s: p99 ${readings.map((r) => r.toFixed(0)).join(' ')} ms`);
    await new Promise((wait) => setTimeout(wait, 1_000));
  }
  // The metric covers the last complete 10 s window: one more reading once the window holding the round's end is complete.
  await new Promise((wait) => setTimeout(wait, 11_000));
  for (const c of coordinators) worst = Math.max(worst, await eventLoopDelayP99Ms(c.url).catch(() => 0));
  return worst;
}

async function waitForRoundEnd(url: string, roundId: string, timeoutMs: number): Promise<Awaited<ReturnType<typeof roundDetails>>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const details = await roundDetails(url, roundId);
    if (details.endedAt !== null) return details;
    if (Date.now() > until) throw new Error(`round ${roundId} still ${details.status} after ${timeoutMs / 1000} s`);
    await new Promise((wait) => setTimeout(wait, 500));
  }
}

async function run(pace: boolean, initialModel: string | null): Promise<RunResult> {
  say(
    `\n## pace steering ${pace ? 'on' : 'off'}: ${devices} devices, ${processes} coordinator process(es), model ${args.model}, upload fraction ${uploadFraction}, uploads to the ${uploads === 'listener' ? 'upload listener (HTTP) where the plan names it' : 'socket'}`,
  );
  const coordinators = await startCoordinators({
    processes,
    initialModel,
    pace,
    uploads,
    maxUploadsPerSecond: args['max-uploads-per-second'] ?? null,
    nodeOptions: args['coordinator-node-options'] ?? null,
    postgresUrl: args.postgres ?? null,
    redisUrl: args.redis ?? null,
  });
  const generators: Generator[] = [];
  try {
    const rssBefore = coordinators.reduce((sum, c) => sum + c.rssBytes(), 0);
    const urls = coordinators.map((c) => c.url);
    const counts = Array.from({ length: Math.ceil(devices / perGenerator) }, (_, g) => Math.min(perGenerator, devices - g * perGenerator));
    counts.forEach(() => generators.push(new Generator()));
    const connected = await Promise.all(
      generators.map((generator, g) =>
        generator.ask(
          { type: 'connect', urls, first: g * perGenerator, count: counts[g]!, generator: g, concurrency: Math.ceil(concurrency / counts.length) },
          'connected',
        ),
      ),
    );
    const held = connected.reduce((sum, c) => sum + c.connected, 0);
    const failed = connected.reduce((sum, c) => sum + c.failed, 0);
    const handshakeSeconds = Math.max(...connected.map((c) => c.seconds));
    const firstError = connected.find((c) => c.firstError)?.firstError;
    say(
      `held connections: ${held} (${failed} failed${firstError ? `, first: ${firstError}` : ''}); handshakes: ${(held / handshakeSeconds).toFixed(0)}/s over ${handshakeSeconds.toFixed(1)} s`,
    );
    // The coordinators' own count (summed: each counts the sockets it holds), and memory once they hold them.
    // One process counts the sockets it holds; a cluster's processes each count them all (the directory is in Redis).
    const countedBy = await Promise.all(urls.map((url) => connectedCount(url)));
    const counted = processes > 1 ? countedBy[0]! : countedBy.reduce((a, b) => a + b, 0);
    const rssPerConnectionKB = (coordinators.reduce((sum, c) => sum + c.rssBytes(), 0) - rssBefore) / Math.max(1, held) / 1024;
    say(`coordinators count ${counted} connected; RSS per connection: ${rssPerConnectionKB.toFixed(1)} KB`);

    // The delay metric covers the last complete 10 s window: let the handshakes' load leave it before a round is measured.
    await new Promise((wait) => setTimeout(wait, settleSeconds * 1000));
    const idle = Math.max(...(await Promise.all(urls.map((url) => eventLoopDelayP99Ms(url)))));
    say(`event-loop delay p99 holding the connections, no round: ${idle.toFixed(1)} ms`);

    const target = Math.max(1, Math.ceil(held * uploadFraction));
    const results: RoundResult[] = [];
    for (let r = 0; r < rounds; r++) {
      const round = await startRound(urls[0]!, {
        minClients: target,
        targetClients: target,
        overSelection: 1,
        deadlineSeconds,
        selectionTimeoutSeconds: 120,
      });
      const cpuBefore = coordinators.reduce((sum, c) => sum + c.cpuSeconds(), 0);
      const metricsBefore = await scrape(urls[0]!);
      const [gcBefore, httpBefore] = [gcTotals(metricsBefore), uploadRequests(metricsBefore)];
      const ended = waitForRoundEnd(urls[0]!, round.id, (deadlineSeconds + 180) * 1000);
      const p99 = await watchEventLoop(coordinators, ended);
      const details = await ended;
      const cpuSeconds = coordinators.reduce((sum, c) => sum + c.cpuSeconds(), 0) - cpuBefore;
      const metricsAfter = await scrape(urls[0]!);
      const [gcAfter, httpAfter] = [gcTotals(metricsAfter), uploadRequests(metricsAfter)];
      const http = (result: string): number => (httpAfter.get(result) ?? 0) - (httpBefore.get(result) ?? 0);
      const gc = (kind: string) => {
        const [before, after] = [gcBefore.get(kind) ?? { count: 0, seconds: 0 }, gcAfter.get(kind) ?? { count: 0, seconds: 0 }];
        return { count: after.count - before.count, seconds: after.seconds - before.seconds };
      };
      const reports = await Promise.all(generators.map((generator) => generator.ask({ type: 'report', graceMs: 30_000 }, 'round')));
      const stats = sumStats(reports.map((report) => report.stats));
      const at = (status: string) => details.transitions.find((t) => t.to === status)?.at;
      const configuring = at('configuring');
      const reporting = at('reporting');
      const spanSeconds = stats.firstSendAt !== null && stats.lastAckAt !== null ? Math.max(1e-3, (stats.lastAckAt - stats.firstSendAt) / 1000) : NaN;
      const result: RoundResult = {
        status: details.status,
        selected: details.metrics.selected,
        uploadsAccepted: details.metrics.accepted,
        commitSeconds: (Date.parse(details.endedAt!) - Date.parse(details.createdAt)) / 1000,
        configureSeconds: configuring && reporting ? (Date.parse(reporting) - Date.parse(configuring)) / 1000 : null,
        uploadsPerSecond: stats.accepted / spanSeconds,
        eventLoopDelayP99Ms: p99,
        cpuMsPerUpload: (cpuSeconds * 1000) / Math.max(1, details.metrics.accepted),
        gc: { major: gc('major'), minor: gc('minor') },
        loadAverage: loadavg()[0]!,
        lostAcks: stats.lostAcks,
        rejected: stats.rejections,
        paced: stats.paced,
        httpUploads: { received: http('received'), busy: http('busy') },
      };
      results.push(result);
      say(
        `round ${r + 1}: ${result.status}, ${result.selected} selected (${result.paced} with a report window), ${result.uploadsAccepted} accepted ` +
          `(devices heard ${stats.accepted} acks, ${stats.rejected} refusals ${JSON.stringify(stats.rejections)}), start to end ${result.commitSeconds.toFixed(1)} s ` +
          `(configuring ${result.configureSeconds?.toFixed(2) ?? '?'} s), ${result.uploadsPerSecond.toFixed(0)} uploads/s ` +
          `(${result.httpUploads.received} over HTTP, ${result.httpUploads.busy} turned away busy), event-loop delay p99 ${p99.toFixed(1)} ms, ` +
          `coordinator CPU ${result.cpuMsPerUpload.toFixed(2)} ms per upload, ` +
          `GC ${result.gc.major.count} major (${result.gc.major.seconds.toFixed(2)} s) ${result.gc.minor.count} minor (${result.gc.minor.seconds.toFixed(2)} s), lost acks ${stats.lostAcks}, load average ${result.loadAverage.toFixed(1)}`,
      );
    }
    const disconnects = (await Promise.all(generators.map((generator) => generator.ask({ type: 'report', graceMs: 0 }, 'round')))).reduce(
      (sum, report) => sum + report.stats.disconnects,
      0,
    );
    say(`disconnects: ${disconnects}`);
    const kill = killTarget ? await killMidRound(killTarget, coordinators, generators, { uploads: target, deadlineSeconds, say }) : null;
    return {
      pace,
      devices,
      processes,
      model: args.model,
      uploadFraction,
      connected: held,
      connectFailed: failed,
      idleEventLoopDelayP99Ms: idle,
      handshakesPerSecond: held / handshakeSeconds,
      rssPerConnectionKB,
      rounds: results,
      uploadsAccepted: results.reduce((sum, r) => sum + r.uploadsAccepted, 0),
      commitSeconds: Math.max(...results.map((r) => r.commitSeconds)),
      eventLoopDelayP99Ms: Math.max(...results.map((r) => r.eventLoopDelayP99Ms)),
      disconnects,
      lostAcks: results.reduce((sum, r) => sum + r.lostAcks, 0),
      kill,
    };
  } finally {
    generators.forEach((generator) => generator.close());
    coordinators.forEach((coordinator) => coordinator.close());
  }
}

// ------------------------------------------------------------------ main

const modelDir = args.model === 'tiny' ? mkdtempSync(join(tmpdir(), 'flock-loadtest-model-')) : null;
try {
  const initialModel = modelDir ? writeTinyModel(modelDir) : null;
  const runs: RunResult[] = [];
  for (const pace of paceModes) runs.push(await run(pace, initialModel));
  if (runs.length === 2) {
    const [on, off] = runs as [RunResult, RunResult];
    say(
      `\npace on / off: commit time ${(on.commitSeconds / off.commitSeconds).toFixed(2)}, event-loop delay p99 ${(on.eventLoopDelayP99Ms / off.eventLoopDelayP99Ms).toFixed(2)}, ` +
        `disconnects ${on.disconnects} / ${off.disconnects}, lost acks ${on.lostAcks} / ${off.lostAcks}`,
    );
  }
  if (args.json) say(JSON.stringify({ ...runs[0], runs }));
} finally {
  if (modelDir) rmSync(modelDir, { recursive: true, force: true });
}
