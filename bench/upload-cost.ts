/**
 * What one upload costs the coordinator, from the socket's bytes to the fold: the coordinator runs
 * as its own process, D raw devices (one bench process) are selected for one round and upload a 2NN
 * delta one after another, each waiting for its acknowledgement; the coordinator's CPU time over
 * those uploads (from /proc), divided by D, is set against two memcpys of the upload's bytes
 * measured here in the same run: cache-hot (the same buffers copied again and again, the cheapest
 * copy there is) and DRAM-sized (each copy from and to buffers not touched since 256 MiB of others).
 * Variants, same run, interleaved: uploads over HTTP to the upload listener (the default: a worker
 * thread receives the bytes, server/src/uploads/; each upload on a connection of its own, as a device
 * uploads once per round) or over socket.io (FLOCK_UPLOAD_PORT=off); the fold and norm on the wasm
 * SIMD kernel (the default) or the JS kernel (FLOCK_VECTOR_KERNEL=js). The coordinator's CPU includes the commit at the round's
 * end (1/D of it). The round's own metrics split the in-process part: decodeMs (socket.io decoding
 * from the last packet's arrival), validationMs (schema, checks, staging + norm), aggregationMs (fold).
 * The uploads-only CPU is also split into the coordinator's main thread and its other threads (V8's
 * garbage-collector helpers, and the upload listener's thread). Then the transport's floor, same run: a process that only
 * receives the same uploads and acknowledges them (bench/lib/transport-floor-server.ts), over
 * socket.io and over a plain HTTP PUT, with an empty heap and with one as large as the coordinator's,
 * and socket.io in a worker thread (a heap of its own) beside a main thread holding that heap.
 *
 *   pnpm build && pnpm bench:upload [--devices 60] [--repeat 3] [--warm-up-rounds 0] [--cpu-prof DIR] [--coordinator-node-options='--flag ...']
 *   pnpm bench:upload --devices 0    # only the in-process intake and the memcpys (seconds)
 *
 * --cpu-prof DIR writes a V8 CPU profile of each coordinator into DIR (open in Chrome DevTools).
 * Prints Markdown to stdout (bench/results/upload-cost.md holds a run).
 */
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import {
  ClientEvent,
  encodeUploadBody,
  ServerEvent,
  uploadUrl,
  type ModelFetchResult,
  type RoundConfiguration,
  type UpdateResult,
  type UpdateUpload,
} from '../client-sdk/src/protocol/index.js';
import { noKeepAliveFetch } from '../server/src/simulation/http-fetch.js';
import { connectDevice, OPERATOR_TOKEN, connectRawSocket, startCoordinator, type RawSocket } from './lib/coordinator-process.js';
import { compressedIntakeMsPerUpload, intakeMsPerUpload, TOPK_FRACTION, UPLOAD_BYTES } from './lib/intake-in-process.js';
import { startFloorProcess } from './lib/floor-process.js';
import { fillRandom, machineInfo, median, repeat, sink, timed } from './lib/measure.js';

/** How the devices upload (the HTTP upload listener, the default, or socket.io) and which kernel folds. */
const VARIANTS = [
  { name: 'HTTP upload listener, wasm SIMD kernel (default)', env: { FLOCK_UPLOAD_PORT: '0', FLOCK_VECTOR_KERNEL: undefined }, http: true },
  { name: 'socket.io (FLOCK_UPLOAD_PORT=off), wasm SIMD kernel', env: { FLOCK_UPLOAD_PORT: 'off', FLOCK_VECTOR_KERNEL: undefined }, http: false },
  { name: 'HTTP upload listener, JS kernel (FLOCK_VECTOR_KERNEL=js)', env: { FLOCK_UPLOAD_PORT: '0', FLOCK_VECTOR_KERNEL: 'js' }, http: true },
] as const;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '60' },
    repeat: { type: 'string', default: '3' },
    'cpu-prof': { type: 'string' },
    'coordinator-node-options': { type: 'string', default: '' },
    'warm-up-rounds': { type: 'string', default: '0' },
  },
});
const CPU_PROF_DIR = args['cpu-prof'];
const DEVICES = Number(args.devices);
const REPEAT = Number(args.repeat);
/** Rounds of the same devices run (unmeasured) before the measured one. */
const WARM_UP_ROUNDS = Number(args['warm-up-rounds']);
/** The coordinator's Node options: a CPU profile on request, and whatever --coordinator-node-options adds (e.g. GC flags). */
const nodeOptions = [
  ...(CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : []),
  ...args['coordinator-node-options'].split(' ').filter((option) => option !== ''),
];

interface RoundCost {
  variant: string;
  rep: number;
  uploads: number;
  bytes: number;
  cpuMsPerUpload: number;
  /** The same over uploads 1..D-1 only: to the acknowledgement of the one before the last, whose upload ends the round (the commit, the new version's evaluation and serving load left out). */
  uploadsOnlyCpuMsPerUpload: number;
  /** The same CPU of the coordinator's main thread alone, and of all its other threads. */
  uploadsOnlyMainMs: number;
  uploadsOnlyOtherThreadsMs: number;
  /** V8 heap in use at the round's end (MiB; from /metrics). */
  heapMiB: number;
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

/** An upload over HTTP to the plan's endpoint, on a connection of its own (as a device uploads once per round). */
async function putUpload(url: string, configuration: RoundConfiguration, upload: UpdateUpload): Promise<UpdateResult> {
  if (!configuration.upload) throw new Error('the plan names no upload endpoint: is the upload listener up?');
  const response = await noKeepAliveFetch(uploadUrl(configuration.upload, url), {
    method: 'PUT',
    headers: { authorization: `Bearer ${configuration.upload.ticket}` },
    body: encodeUploadBody(upload),
  });
  return (await response.json()) as UpdateResult;
}

/** One round of D uploads against a fresh coordinator. */
async function measureRound(variant: (typeof VARIANTS)[number], rep: number): Promise<RoundCost> {
  const coordinator = await startCoordinator(
    { ...variant.env, FLOCK_EVENT_RATE_LIMITS: 'off', FLOCK_MAX_SELECTED_PER_ADDRESS: '0', FLOCK_MAX_CONNECTIONS_PER_ADDRESS: '0' },
    'upload',
    nodeOptions,
  );
  const sockets: RawSocket[] = [];
  try {
    for (let d = 0; d < DEVICES; d++) {
      const socket = await connectDevice(coordinator.url);
      socket.emit(ClientEvent.conditions, { eligible: true, reasons: [] });
      sockets.push(socket);
    }
    const fetched = (await sockets[0]!.timeout(60_000).emitWithAck(ClientEvent.fetchModel, {})) as ModelFetchResult;
    if (!fetched.ok) throw new Error(`model fetch failed: ${fetched.error}`);
    const shapes = fetched.model.weightSpecs.map((spec) => spec.shape);
    const values = shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
    const delta = new Float32Array(values);
    fillRandom(delta, rep + 1, 1e-4);
    const bytes = delta.byteLength;

    /** Starts a round of every device and resolves once each has its configuration. */
    const startRound = async (): Promise<{ id: string; configurations: RoundConfiguration[] }> => {
      const configured = sockets.map((socket) => new Promise<RoundConfiguration>((done) => socket.once(ServerEvent.configure, done)));
      const round = await api<{ id: string }>(coordinator.url, '/api/rounds', {
        method: 'POST',
        body: JSON.stringify({ minClients: DEVICES, targetClients: DEVICES, overSelection: 1, deadlineSeconds: 600 }),
      });
      return { id: round.id, configurations: await Promise.all(configured) };
    };
    /** Every device uploads, one after another; `beforeLast` runs just before the last upload (which ends the round). */
    const uploadAll = async (configurations: RoundConfiguration[], beforeLast: () => void = () => undefined): Promise<void> => {
      for (const [d, socket] of sockets.entries()) {
        if (d === DEVICES - 1) beforeLast();
        const configuration = configurations[d]!;
        const { roundId, modelVersion } = configuration;
        // A copy per upload, as each device would send its own delta.
        const upload = { roundId, modelVersion, numExamples: 100, trainLoss: 0.5, delta: { shapes, data: Buffer.from(delta.buffer.slice(0)) } };
        const result = variant.http
          ? await putUpload(coordinator.url, configuration, upload)
          : ((await socket.timeout(60_000).emitWithAck(ClientEvent.update, upload)) as UpdateResult);
        if (!result.accepted) throw new Error(`upload refused: ${result.reason}`);
      }
    };
    type RoundState = { status: string; metrics: { accepted: number; decodeMs: number; validationMs: number; aggregationMs: number } };
    const roundEnd = async (id: string): Promise<RoundState> => {
      let state: RoundState = { status: 'running', metrics: { accepted: 0, decodeMs: 0, validationMs: 0, aggregationMs: 0 } };
      for (let i = 0; i < 200 && !['committed', 'failed', 'aborted'].includes(state.status); i++) {
        await new Promise((done) => setTimeout(done, 50));
        state = await api<RoundState>(coordinator.url, `/api/rounds/${id}`);
      }
      return state;
    };

    // Rounds before the measured one warm the process up (JIT, the kernels' optimizing tier), as a coordinator that has run rounds is.
    for (let w = 0; w < WARM_UP_ROUNDS; w++) {
      const warmUp = await startRound();
      await uploadAll(warmUp.configurations);
      const { status } = await roundEnd(warmUp.id);
      if (status !== 'committed') throw new Error(`warm-up round ${status}`);
    }
    const round = await startRound();
    const cpuBefore = coordinator.cpuSeconds();
    const started = performance.now();
    let cpuBeforeLast = cpuBefore;
    const threadsBefore = coordinator.threadCpuSeconds();
    let threadsBeforeLast = threadsBefore;
    await uploadAll(round.configurations, () => {
      cpuBeforeLast = coordinator.cpuSeconds();
      threadsBeforeLast = coordinator.threadCpuSeconds();
    });
    const wallSeconds = (performance.now() - started) / 1000;
    const ended = await roundEnd(round.id);
    const cpuSeconds = coordinator.cpuSeconds() - cpuBefore;
    const { status, metrics } = ended;
    const exposition = await (await noKeepAliveFetch(`${coordinator.url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } })).text();
    const heapBytes = Number(/^flock_nodejs_heap_size_used_bytes (\S+)$/m.exec(exposition)?.[1]);
    const perUpload = (seconds: number): number => (DEVICES > 1 ? (1000 * seconds) / (DEVICES - 1) : NaN);
    return {
      variant: variant.name,
      rep,
      uploads: DEVICES,
      bytes,
      cpuMsPerUpload: (1000 * cpuSeconds) / DEVICES,
      uploadsOnlyCpuMsPerUpload: perUpload(cpuBeforeLast - cpuBefore),
      uploadsOnlyMainMs: perUpload(threadsBeforeLast.main - threadsBefore.main),
      uploadsOnlyOtherThreadsMs: perUpload(threadsBeforeLast.others - threadsBefore.others),
      heapMiB: heapBytes / 2 ** 20,
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

/** The transports measured as a floor, each with an empty heap and with one the size of the coordinator's. */
const FLOOR_TRANSPORTS = ['socketio', 'http'] as const;
type FloorTransport = (typeof FLOOR_TRANSPORTS)[number];

/** One floor measured: a transport, an empty heap or the coordinator's, and (last) socket.io in a worker thread beside the coordinator-sized heap. */
interface FloorVariant {
  transport: FloorTransport;
  heap: 'empty' | 'coordinator';
  inWorker: boolean;
}
const FLOOR_VARIANTS: FloorVariant[] = [
  ...FLOOR_TRANSPORTS.flatMap((transport) => (['empty', 'coordinator'] as const).map((heap) => ({ transport, heap, inWorker: false }))),
  { transport: 'socketio', heap: 'coordinator', inWorker: true },
];

interface FloorCost {
  variant: FloorVariant;
  rep: number;
  /** The floor process's CPU (all threads) over uploads 1..D-1, per upload, as the coordinator's uploads-only column. */
  cpuMsPerUpload: number;
}

/** How the bench sends one upload's bytes to a floor process over `transport`, waiting for its answer. */
async function floorSender(transport: FloorTransport, url: string, values: number): Promise<{ send: (data: Buffer) => Promise<void>; close: () => void }> {
  if (transport === 'socketio') {
    const socket = await connectRawSocket(url);
    const upload = (data: Buffer) => ({ roundId: 'floor', modelVersion: 1, numExamples: 100, trainLoss: 0.5, delta: { shapes: [[values]], data } });
    return {
      send: async (data) => void (await socket.timeout(60_000).emitWithAck(ClientEvent.update, upload(data))),
      close: () => socket.disconnect(),
    };
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const headers = (bytes: number) => ({ 'Content-Type': 'application/octet-stream', 'Content-Length': bytes });
  return {
    send: (data) =>
      new Promise((done, failed) => {
        const put = request(`${url}/upload`, { method: 'PUT', agent, headers: headers(data.byteLength) }, (response) => {
          response.resume();
          response.once('end', () => done());
        });
        put.once('error', failed);
        put.end(data);
      }),
    close: () => agent.destroy(),
  };
}

/** D uploads of the 2NN's delta, one after another, to a process that only receives and acknowledges them. */
async function measureFloor(variant: FloorVariant, heapMiB: number, rep: number): Promise<FloorCost> {
  const { transport } = variant;
  const floorArgs = [
    '--transport',
    transport,
    '--heap-mb',
    String(variant.heap === 'empty' ? 0 : Math.round(heapMiB)),
    ...(variant.inWorker ? ['--in-worker'] : []),
  ];
  const floor = await startFloorProcess('transport-floor-server.ts', floorArgs);
  try {
    const url = floor.url;
    const delta = new Float32Array(UPLOAD_BYTES / 4);
    fillRandom(delta, rep + 1, 1e-4);
    const { send, close } = await floorSender(transport, url, delta.length);
    // A copy per upload, as for the coordinator; the first upload warms the path up and is not counted.
    await send(Buffer.from(delta.buffer.slice(0)));
    const cpuBefore = floor.cpuSeconds();
    for (let d = 1; d < DEVICES; d++) await send(Buffer.from(delta.buffer.slice(0)));
    const cpuMsPerUpload = (1000 * (floor.cpuSeconds() - cpuBefore)) / (DEVICES - 1);
    close();
    return { variant, rep, cpuMsPerUpload };
  } finally {
    floor.close();
  }
}

const rows: RoundCost[] = [];
for (let rep = 1; rep <= REPEAT && DEVICES > 0; rep++) {
  // Interleaved, so that load from elsewhere on the shared cores hits both variants alike.
  for (const variant of VARIANTS) rows.push(await measureRound(variant, rep));
}
// The floor, with the coordinator's heap as measured above (interleaved over transports and heaps).
const coordinatorHeapMiB = rows.length > 0 ? median(rows.map((row) => row.heapMiB)) : 0;
const floors: FloorCost[] = [];
for (let rep = 1; rep <= REPEAT && DEVICES > 1; rep++) for (const variant of FLOOR_VARIANTS) floors.push(await measureFloor(variant, coordinatorHeapMiB, rep));
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
console.log(
  `\`pnpm bench:upload --devices ${DEVICES} --repeat ${REPEAT}${WARM_UP_ROUNDS > 0 ? ` --warm-up-rounds ${WARM_UP_ROUNDS}` : ''}\`${WARM_UP_ROUNDS > 0 ? ` (each measured round follows ${WARM_UP_ROUNDS} unmeasured round(s) of the same devices on the same coordinator)` : ''}; ${JSON.stringify(machineInfo())}; load average at the end ${load.join(' ')}.\n`,
);
console.log(
  `One 2NN delta: ${bytes.toLocaleString('en')} bytes; a memcpy of them here: ${hotMs.toFixed(3)} ms cache-hot, ${dramMs.toFixed(3)} ms from and to DRAM (medians).\n`,
);
if (rows.length > 0) {
  console.log(
    '| rep | transport, kernel | uploads | round | coordinator CPU per upload (ms) | x hot memcpy | x DRAM memcpy | uploads only: CPU per upload (ms) | x hot memcpy | x DRAM memcpy | of which main thread / other threads (ms) | heap (MiB) | wall per upload (ms) | decode / validate / fold (ms, round metrics) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    console.log(
      `| ${row.rep} | ${row.variant} | ${row.uploads} | ${row.status} | ${row.cpuMsPerUpload.toFixed(2)} | ${(row.cpuMsPerUpload / hotMs).toFixed(0)} | ${(row.cpuMsPerUpload / dramMs).toFixed(0)} | ${row.uploadsOnlyCpuMsPerUpload.toFixed(2)} | ${(row.uploadsOnlyCpuMsPerUpload / hotMs).toFixed(0)} | ${(row.uploadsOnlyCpuMsPerUpload / dramMs).toFixed(0)} | ${row.uploadsOnlyMainMs.toFixed(2)} / ${row.uploadsOnlyOtherThreadsMs.toFixed(2)} | ${row.heapMiB.toFixed(0)} | ${row.wallMsPerUpload.toFixed(2)} | ${row.decodeMs.toFixed(3)} / ${row.validationMs.toFixed(3)} / ${row.foldMs.toFixed(3)} |`,
    );
  }
  console.log(
    '\n| transport, kernel | median CPU per upload (ms) | x hot memcpy | x DRAM memcpy | uploads only: median CPU per upload (ms) | x hot memcpy | x DRAM memcpy | main thread / other threads (ms, medians) | median decode / validate / fold (ms) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const variant of VARIANTS) {
    const mine = rows.filter((row) => row.variant === variant.name);
    const cpu = median(mine.map((row) => row.cpuMsPerUpload));
    const uploadsOnly = median(mine.map((row) => row.uploadsOnlyCpuMsPerUpload));
    const split = [median(mine.map((r) => r.decodeMs)), median(mine.map((r) => r.validationMs)), median(mine.map((r) => r.foldMs))];
    const threads = [median(mine.map((r) => r.uploadsOnlyMainMs)), median(mine.map((r) => r.uploadsOnlyOtherThreadsMs))];
    console.log(
      `| ${variant.name} | ${cpu.toFixed(2)} | ${(cpu / hotMs).toFixed(0)} | ${(cpu / dramMs).toFixed(0)} | ${uploadsOnly.toFixed(2)} | ${(uploadsOnly / hotMs).toFixed(0)} | ${(uploadsOnly / dramMs).toFixed(0)} | ${threads.map((ms) => ms.toFixed(2)).join(' / ')} | ${split.map((ms) => ms.toFixed(3)).join(' / ')} |`,
    );
  }
}
if (floors.length > 0) {
  console.log(
    `\nThe transport's floor: a process that only receives the same ${DEVICES} uploads one after another and acknowledges each (bench/lib/transport-floor-server.ts: one copy of the delta into a preallocated buffer, nothing else), with an empty heap or with ${coordinatorHeapMiB.toFixed(0)} MiB of live objects (the coordinator's heap above), the last row with the server in a worker thread of its own while the main thread holds those objects; its CPU (all threads) over uploads 2..${DEVICES}, per upload, median of ${REPEAT}:\n`,
  );
  console.log('| transport | heap (MiB) | CPU per upload (ms) | per rep | x hot memcpy | x DRAM memcpy |');
  console.log('|---|---|---|---|---|---|');
  for (const variant of FLOOR_VARIANTS) {
    const mine = floors.filter((floor) => floor.variant === variant).map((floor) => floor.cpuMsPerUpload);
    const ms = median(mine);
    const transport = variant.transport === 'http' ? 'HTTP PUT of the bytes' : 'socket.io (websocket, binary attachment, ack)';
    const label = variant.inWorker ? `${transport}, in a worker thread` : transport;
    const heap = variant.heap === 'empty' ? '0' : variant.inWorker ? `${coordinatorHeapMiB.toFixed(0)} on the main thread` : coordinatorHeapMiB.toFixed(0);
    console.log(
      `| ${label} | ${heap} | ${ms.toFixed(2)} | ${mine.map((v) => v.toFixed(2)).join(', ')} | ${(ms / hotMs).toFixed(0)} | ${(ms / dramMs).toFixed(0)} |`,
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
