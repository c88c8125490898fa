/**
 * What one upload costs the coordinator, from the socket's bytes to the fold: the coordinator runs
 * as its own process, D raw devices (one bench process) are selected for one round and upload a 2NN
 * delta one after another, each waiting for its acknowledgement; the coordinator's CPU time over
 * those uploads (from /proc), divided by D, is set against two memcpys of the upload's bytes
 * measured here in the same run: cache-hot (the same buffers copied again and again, the cheapest
 * copy there is) and DRAM-sized (each copy from and to buffers not touched since 256 MiB of others).
 * Variants, same run, interleaved: the fold and norm on the wasm SIMD kernel (the default) and on
 * the JS kernel (FLOCK_VECTOR_KERNEL=js). The coordinator's CPU includes the commit at the round's
 * end (1/D of it). The round's own metrics split the in-process part: decodeMs (socket.io decoding
 * from the last packet's arrival), validationMs (schema, checks, staging + norm), aggregationMs (fold).
 *
 *   pnpm build && pnpm bench:upload [--devices 60] [--repeat 3] [--cpu-prof DIR]
 *   pnpm bench:upload --devices 0    # only the in-process intake and the memcpys (seconds)
 *
 * --cpu-prof DIR writes a V8 CPU profile of each coordinator into DIR (open in Chrome DevTools).
 * Prints Markdown to stdout (bench/results/upload-cost.md holds a run).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ClientEvent, ServerEvent, type ModelFetchResult } from '../client-sdk/src/protocol/index.js';
import { noKeepAliveFetch } from '../server/src/simulation/http-fetch.js';
import { connectDevice, OPERATOR_TOKEN, startCoordinator, type RawSocket } from './lib/coordinator-process.js';
import { compressedIntakeMsPerUpload, intakeMsPerUpload, TOPK_FRACTION, UPLOAD_BYTES } from './lib/intake-in-process.js';
import { fillRandom, machineInfo, median, repeat, sink, timed } from './lib/measure.js';

const VARIANTS = [
  { name: 'wasm SIMD kernel (default)', env: { FLOCK_VECTOR_KERNEL: undefined } },
  { name: 'JS kernel (FLOCK_VECTOR_KERNEL=js)', env: { FLOCK_VECTOR_KERNEL: 'js' } },
] as const;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '60' },
    repeat: { type: 'string', default: '3' },
    'cpu-prof': { type: 'string' },
  },
});
const CPU_PROF_DIR = args['cpu-prof'];
const DEVICES = Number(args.devices);
const REPEAT = Number(args.repeat);
/** The coordinator's Node options: a CPU profile on request, nothing else that would cost it CPU. */
const nodeOptions = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];

interface RoundCost {
  variant: string;
  rep: number;
  uploads: number;
  bytes: number;
  cpuMsPerUpload: number;
  /** The same over uploads 1..D-1 only: to the acknowledgement of the one before the last, whose upload ends the round (the commit, the new version's evaluation and serving load left out). */
  uploadsOnlyCpuMsPerUpload: number;
  wallMsPerUpload: number;
  status: string;
  /** The round's own timings per accepted upload (ms). */
  decodeMs: number;
  validationMs: number;
  foldMs: number;
}

/** Median seconds of one cache-hot memcpy of `bytes`: the same two buffers again and again. */
function hotMemcpySeconds(bytes: number): number {
  const source = Buffer.alloc(bytes, 1);
  const target = Buffer.alloc(bytes);
  return median(
    repeat(
      () =>
        timed(() => {
          source.copy(target);
          sink.value += target[bytes - 1]!;
        }),
      200,
      0.5,
    ),
  );
}

/** Median seconds of one memcpy of `bytes` from and to DRAM: buffers visited round-robin over 2 x 256 MiB. */
function dramMemcpySeconds(bytes: number): number {
  const slots = Math.floor((256 * 2 ** 20) / bytes);
  const sources = Buffer.alloc(slots * bytes, 1);
  const targets = Buffer.alloc(slots * bytes, 2);
  let slot = 0;
  return median(
    repeat(
      () =>
        timed(() => {
          sources.copy(targets, slot * bytes, slot * bytes, (slot + 1) * bytes);
          sink.value += targets[slot * bytes]!;
          slot = (slot + 1) % slots;
        }),
      200,
      0.5,
    ),
  );
}

async function api<T>(url: string, path: string, init: RequestInit = {}): Promise<T> {
  const response = await noKeepAliveFetch(`${url}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, 'Content-Type': 'application/json' },
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** One round of D uploads against a fresh coordinator. */
async function measureRound(variant: (typeof VARIANTS)[number], rep: number): Promise<RoundCost> {
  const coordinator = await startCoordinator({ ...variant.env, FLOCK_EVENT_RATE_LIMITS: 'off', FLOCK_MAX_SELECTED_PER_ADDRESS: '0' }, 'upload', nodeOptions);
  const sockets: RawSocket[] = [];
  try {
    const configured: Promise<{ roundId: string; modelVersion: number }>[] = [];
    for (let d = 0; d < DEVICES; d++) {
      const socket = await connectDevice(coordinator.url);
      configured.push(new Promise((done) => socket.once(ServerEvent.configure, done)));
      socket.emit(ClientEvent.conditions, { eligible: true, reasons: [] });
      sockets.push(socket);
    }
    const fetched = (await sockets[0]!.timeout(60_000).emitWithAck(ClientEvent.fetchModel, {})) as ModelFetchResult;
    if (!fetched.ok) throw new Error(`model fetch failed: ${fetched.error}`);
    const shapes = fetched.model.weightSpecs.map((spec) => spec.shape);
    const values = shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
    const delta = new Float32Array(values);
    fillRandom(delta, rep + 1, 1e-4);

    const round = await api<{ id: string }>(coordinator.url, '/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: DEVICES, targetClients: DEVICES, overSelection: 1, deadlineSeconds: 600 }),
    });
    const configurations = await Promise.all(configured);
    const bytes = delta.byteLength;
    const cpuBefore = coordinator.cpuSeconds();
    const started = performance.now();
    let cpuBeforeLast = cpuBefore;
    for (const [d, socket] of sockets.entries()) {
      if (d === DEVICES - 1) cpuBeforeLast = coordinator.cpuSeconds();
      const { roundId, modelVersion } = configurations[d]!;
      // A copy per upload, as each device would send its own delta.
      const upload = { roundId, modelVersion, numExamples: 100, trainLoss: 0.5, delta: { shapes, data: Buffer.from(delta.buffer.slice(0)) } };
      const result = (await socket.timeout(60_000).emitWithAck(ClientEvent.update, upload)) as { accepted: boolean; reason?: string };
      if (!result.accepted) throw new Error(`upload refused: ${result.reason}`);
    }
    const wallSeconds = (performance.now() - started) / 1000;
    let ended = { status: 'running', metrics: { accepted: 0, decodeMs: 0, validationMs: 0, aggregationMs: 0 } };
    for (let i = 0; i < 200 && !['committed', 'failed', 'aborted'].includes(ended.status); i++) {
      await new Promise((done) => setTimeout(done, 50));
      ended = await api<typeof ended>(coordinator.url, `/api/rounds/${round.id}`);
    }
    const cpuSeconds = coordinator.cpuSeconds() - cpuBefore;
    const { status, metrics } = ended;
    return {
      variant: variant.name,
      rep,
      uploads: DEVICES,
      bytes,
      cpuMsPerUpload: (1000 * cpuSeconds) / DEVICES,
      uploadsOnlyCpuMsPerUpload: DEVICES > 1 ? (1000 * (cpuBeforeLast - cpuBefore)) / (DEVICES - 1) : NaN,
      wallMsPerUpload: (1000 * wallSeconds) / DEVICES,
      status,
      decodeMs: metrics.decodeMs / metrics.accepted,
      validationMs: metrics.validationMs / metrics.accepted,
      // aggregationMs also holds finish() (once per round): 1/D of it per upload, as for the CPU.
      foldMs: metrics.aggregationMs / metrics.accepted,
    };
  } finally {
    sockets.forEach((socket) => socket.disconnect());
    if (CPU_PROF_DIR) {
      // A graceful stop, so that the coordinator writes its profile.
      const exited = new Promise((done) => coordinator.child.once('exit', done));
      coordinator.child.kill('SIGTERM');
      await exited;
    }
    coordinator.close();
  }
}

const rows: RoundCost[] = [];
for (let rep = 1; rep <= REPEAT && DEVICES > 0; rep++) {
  // Interleaved, so that load from elsewhere on the shared cores hits both variants alike.
  for (const variant of VARIANTS) rows.push(await measureRound(variant, rep));
}
const bytes = UPLOAD_BYTES;
const hotMs = 1000 * hotMemcpySeconds(bytes);
const dramMs = 1000 * dramMemcpySeconds(bytes);
// In-process intake, interleaved over the kernels like the rounds above.
const intake = new Map<string, number[]>();
for (let rep = 0; rep < 3; rep++)
  for (const kernel of ['wasm-simd', 'js'] as const) intake.set(kernel, [...(intake.get(kernel) ?? []), intakeMsPerUpload(kernel)]);
// Compressed uploads, dense decode then fold (before) against folded from the bytes (now), interleaved.
const compressed = new Map<string, number[]>();
for (let rep = 0; rep < 3; rep++)
  for (const kind of ['int8', 'topk'] as const)
    for (const kernel of ['wasm-simd', 'js'] as const)
      for (const path of ['dense', 'fused'] as const) {
        const key = `${kind}|${kernel}|${path}`;
        compressed.set(key, [...(compressed.get(key) ?? []), compressedIntakeMsPerUpload(kind, path, kernel)]);
      }
const load = loadavg().map((l) => l.toFixed(1));

console.log(`# What one upload costs the coordinator\n`);
console.log(`\`pnpm bench:upload --devices ${DEVICES} --repeat ${REPEAT}\`; ${JSON.stringify(machineInfo())}; load average at the end ${load.join(' ')}.\n`);
console.log(
  `One 2NN delta: ${bytes.toLocaleString('en')} bytes; a memcpy of them here: ${hotMs.toFixed(3)} ms cache-hot, ${dramMs.toFixed(3)} ms from and to DRAM (medians).\n`,
);
if (rows.length > 0) {
  console.log(
    '| rep | kernel | uploads | round | coordinator CPU per upload (ms) | x hot memcpy | x DRAM memcpy | uploads only: CPU per upload (ms) | x hot memcpy | x DRAM memcpy | wall per upload (ms) | decode / validate / fold (ms, round metrics) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    console.log(
      `| ${row.rep} | ${row.variant} | ${row.uploads} | ${row.status} | ${row.cpuMsPerUpload.toFixed(2)} | ${(row.cpuMsPerUpload / hotMs).toFixed(0)} | ${(row.cpuMsPerUpload / dramMs).toFixed(0)} | ${row.uploadsOnlyCpuMsPerUpload.toFixed(2)} | ${(row.uploadsOnlyCpuMsPerUpload / hotMs).toFixed(0)} | ${(row.uploadsOnlyCpuMsPerUpload / dramMs).toFixed(0)} | ${row.wallMsPerUpload.toFixed(2)} | ${row.decodeMs.toFixed(3)} / ${row.validationMs.toFixed(3)} / ${row.foldMs.toFixed(3)} |`,
    );
  }
  console.log(
    '\n| kernel | median CPU per upload (ms) | x hot memcpy | x DRAM memcpy | uploads only: median CPU per upload (ms) | x hot memcpy | x DRAM memcpy | median decode / validate / fold (ms) |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const variant of VARIANTS) {
    const mine = rows.filter((row) => row.variant === variant.name);
    const cpu = median(mine.map((row) => row.cpuMsPerUpload));
    const uploadsOnly = median(mine.map((row) => row.uploadsOnlyCpuMsPerUpload));
    const split = [median(mine.map((r) => r.decodeMs)), median(mine.map((r) => r.validationMs)), median(mine.map((r) => r.foldMs))];
    console.log(
      `| ${variant.name} | ${cpu.toFixed(2)} | ${(cpu / hotMs).toFixed(0)} | ${(cpu / dramMs).toFixed(0)} | ${uploadsOnly.toFixed(2)} | ${(uploadsOnly / hotMs).toFixed(0)} | ${(uploadsOnly / dramMs).toFixed(0)} | ${split.map((ms) => ms.toFixed(3)).join(' / ')} |`,
    );
  }
}
console.log(
  "\nThe coordinator's own intake code, in this process without the network (bench/lib/intake-in-process.ts: schema, checks, norm, bound, fold of fresh 2NN Buffers), median of 3 interleaved runs:\n",
);
console.log('| kernel | intake ms per upload | x hot memcpy | x DRAM memcpy |');
console.log('|---|---|---|---|');
for (const [kernel, runs] of intake) {
  const ms = median(runs);
  console.log(`| ${kernel} | ${ms.toFixed(3)} | ${(ms / hotMs).toFixed(1)} | ${(ms / dramMs).toFixed(1)} |`);
}
console.log(
  `\nCompressed uploads (int8; top-k at ${TOPK_FRACTION}), the same intake: decoded into a dense Float32Array, then measured and folded as float32 (before), against validated, measured and folded from the bytes (checkUpdate + CompressedUpdate, now); medians of 3 interleaved runs:\n`,
);
console.log('| upload | kernel | dense decode + norm + fold (ms) | from the bytes (ms) | before / now |');
console.log('|---|---|---|---|---|');
for (const kind of ['int8', 'topk'] as const)
  for (const kernel of ['wasm-simd', 'js'] as const) {
    const dense = median(compressed.get(`${kind}|${kernel}|dense`)!);
    const fused = median(compressed.get(`${kind}|${kernel}|fused`)!);
    console.log(`| ${kind} | ${kernel} | ${dense.toFixed(3)} | ${fused.toFixed(3)} | ${(dense / fused).toFixed(2)}x |`);
  }
