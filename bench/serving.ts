/**
 * The global model as a service, measured from outside: the coordinator runs as its own process
 * (the default 2NN, 784 -> 200 -> 200 -> 10) and autocannon sends `POST /v2/models/global/infer`
 * requests of one MNIST-sized row (784 FP32 values, JSON) at concurrency 1, 16 and 64, with dynamic
 * batching on (FLOCK_INFERENCE_MAX_BATCH_SIZE=64) and off (=1), with the inference log on and off;
 * plus the binary tensor extension and the express route (FLOCK_INFERENCE_FAST_PATH=false) at the highest
 * concurrency, and each cell's coordinator CPU time per request. Beside it, in the same run, the limit:
 * the same model's `model.predict` on batches of 64 rows (and of 1) back to back in the same kind
 * of worker thread, no HTTP (InferencePool, in this process). And the floors under the coordinator:
 * processes with nothing but its HTTP layer (bench/lib/http-floor-server.ts) that read the same requests and answer
 * a fixed response, with and without parsing the JSON or keeping the inference log; and with its
 * dynamic batcher and one inference thread too, predicting each row with and without the log (the
 * architecture the issue prescribes, without the checks), under the same load at the highest concurrency.
 *
 *   pnpm build && pnpm bench:serving [--seconds 4] [--repeat 2] [--connections 1,16,64] [--out bench/results/serving.md]
 *
 * Prints Markdown (bench/results/serving.md holds a run). Both processes share this machine's cores.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { noKeepAliveFetch } from '../server/src/simulation/http-fetch.js';
import { startCoordinator } from './lib/coordinator-process.js';
import { startFloorProcess, type FloorProcess } from './lib/floor-process.js';
import { fillRandom, machineInfo } from './lib/measure.js';
import { rawPredictRowsPerSecond } from './lib/raw-predict.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    connections: { type: 'string', default: '1,16,64' },
    out: { type: 'string' },
    /** Variant indices to run (quick checks); the summary needs 0, 1 and 2. */
    only: { type: 'string' },
    repeat: { type: 'string', default: '2' },
  },
});
const SECONDS = Number(args.seconds);
const REPEAT = Number(args.repeat);
const CONNECTIONS = args.connections.split(',').map(Number);
const INFERENCE_KEY = 'bench-inference-key-0123456789';
const FEATURES = 784;
const RAW_BATCH = 64;

interface Variant {
  name: string;
  env: Record<string, string>;
  binary?: boolean;
  /** Only at these concurrencies (default: all). */
  connections?: number[];
}

const VARIANTS: Variant[] = [
  { name: 'batching on, log on (default)', env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '64', FLOCK_INFERENCE_LOG: 'true' } },
  { name: 'batching on, log off', env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '64', FLOCK_INFERENCE_LOG: 'false' } },
  { name: 'batching off, log on', env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '1', FLOCK_INFERENCE_LOG: 'true' } },
  { name: 'batching off, log off', env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '1', FLOCK_INFERENCE_LOG: 'false' } },
  {
    name: 'batching on, log on, binary tensors',
    env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '64', FLOCK_INFERENCE_LOG: 'true' },
    binary: true,
    connections: [CONNECTIONS[CONNECTIONS.length - 1]!],
  },
  {
    name: 'batching off, log on, binary tensors',
    env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '1', FLOCK_INFERENCE_LOG: 'true' },
    binary: true,
    connections: [CONNECTIONS[CONNECTIONS.length - 1]!],
  },
  {
    name: 'batching on, log off, binary tensors',
    env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '64', FLOCK_INFERENCE_LOG: 'false' },
    binary: true,
    connections: [CONNECTIONS[CONNECTIONS.length - 1]!],
  },
  {
    name: 'batching on, log on, through express (fast path off)',
    env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '64', FLOCK_INFERENCE_LOG: 'true', FLOCK_INFERENCE_FAST_PATH: 'false' },
    connections: [CONNECTIONS[CONNECTIONS.length - 1]!],
  },
  {
    name: 'batching off, log off, binary tensors',
    env: { FLOCK_INFERENCE_MAX_BATCH_SIZE: '1', FLOCK_INFERENCE_LOG: 'false' },
    binary: true,
    connections: [CONNECTIONS[CONNECTIONS.length - 1]!],
  },
];

/**
 * The coordinator's HTTP layer alone under the same load (bench/lib/http-floor-server.ts): what the
 * coordinator cannot beat. `predict`: with the coordinator's batcher and inference thread too, on
 * the first coordinator's version 1.
 */
const FLOORS = [
  { name: 'floor: HTTP layer only, reads the body, fixed answer', args: [], binary: false, predict: false },
  { name: 'floor: HTTP layer only, reads and JSON.parses the body, fixed answer', args: ['--parse'], binary: false, predict: false },
  { name: 'floor: HTTP layer only, reads the body, fixed answer, binary tensors', args: [], binary: true, predict: false },
  { name: 'floor: HTTP layer + the inference log (digest, SQLite record), binary tensors', args: ['--log'], binary: true, predict: false },
  { name: 'floor: HTTP layer + dynamic batching and one inference thread, binary tensors, no checks, no log', args: [], binary: true, predict: true },
  {
    name: 'floor: HTTP layer + dynamic batching and one inference thread + the inference log, binary tensors, no checks',
    args: ['--log'],
    binary: true,
    predict: true,
  },
];

interface Cell {
  variant: string;
  connections: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU time of the coordinator process (all its threads) per answered request, in ms: less sensitive to the machine's other load than requests/s. */
  cpuMsPerRequest: number;
  /** CPU time of this process (autocannon, the load generator) per answered request, in ms. */
  loadCpuMsPerRequest: number;
}

function row(seed: number): Float32Array {
  const values = new Float32Array(FEATURES);
  fillRandom(values, seed, 1);
  for (let i = 0; i < values.length; i++) values[i] = Math.abs(values[i]!);
  return values;
}

function jsonBody(values: Float32Array): string {
  return JSON.stringify({ inputs: [{ name: 'input', shape: [1, FEATURES], datatype: 'FP32', data: Array.from(values) }] });
}

function binaryBody(values: Float32Array): { body: Buffer; headerLength: number } {
  const header = Buffer.from(
    // Outputs as bytes too, as V2 clients' binary mode asks (tritonclient's InferRequestedOutput defaults to binary_data=True).
    JSON.stringify({
      inputs: [{ name: 'input', shape: [1, FEATURES], datatype: 'FP32', parameters: { binary_data_size: values.byteLength } }],
      parameters: { binary_data_output: true },
    }),
  );
  return { body: Buffer.concat([header, Buffer.from(values.buffer)]), headerLength: header.byteLength };
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const response = await noKeepAliveFetch(`${url}/v2/health/ready`);
    if (response.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('serving did not become ready');
}

async function load(url: string, connections: number, binary: boolean, seconds: number, cpuSeconds: () => number = () => 0): Promise<Omit<Cell, 'variant'>> {
  const values = row(connections);
  const headers: Record<string, string> = { Authorization: `Bearer ${INFERENCE_KEY}` };
  let body: string | Buffer;
  if (binary) {
    const encoded = binaryBody(values);
    body = encoded.body;
    headers['Content-Type'] = 'application/octet-stream';
    headers['Inference-Header-Content-Length'] = String(encoded.headerLength);
  } else {
    body = jsonBody(values);
    headers['Content-Type'] = 'application/json';
  }
  const cpuBefore = cpuSeconds();
  const loadCpuBefore = process.cpuUsage();
  const result = await autocannon({ url: `${url}/v2/models/global/infer`, method: 'POST', headers, body, connections, duration: seconds });
  const cpu = cpuSeconds() - cpuBefore;
  const loadCpu = process.cpuUsage(loadCpuBefore);
  return {
    cpuMsPerRequest: result.requests.total > 0 ? (1000 * cpu) / result.requests.total : NaN,
    loadCpuMsPerRequest: result.requests.total > 0 ? (loadCpu.user + loadCpu.system) / 1000 / result.requests.total : NaN,
    connections,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

async function main(): Promise<void> {
  const chosen = args.only ? args.only.split(',').map((i) => VARIANTS[Number(i)]!) : VARIANTS;
  // Every variant's coordinator runs from the start (idle ones cost nothing but memory), and the
  // cells are interleaved and repeated, so that the machine's other load falls on all alike.
  const coordinators = new Map<string, Awaited<ReturnType<typeof startCoordinator>>>();
  const samples = new Map<string, Omit<Cell, 'variant'>[]>();
  const floors = new Map<string, { server: FloorProcess; binary: boolean }>();
  const top = CONNECTIONS[CONNECTIONS.length - 1]!;
  const record = (name: string, cell: Omit<Cell, 'variant'>, rep: number): void => {
    const key = `${name}|${cell.connections}`;
    samples.set(key, [...(samples.get(key) ?? []), cell]);
    console.error(
      `rep ${rep} ${name} c=${cell.connections}: ${cell.requestsPerSecond.toFixed(0)} req/s, p50 ${cell.p50} ms, p99 ${cell.p99} ms, errors ${cell.errors}, ${cell.cpuMsPerRequest.toFixed(3)} (load ${cell.loadCpuMsPerRequest.toFixed(3)}) CPU ms/request`,
    );
  };
  let raw: { batched: number; single: number } | null = null;
  try {
    for (const variant of chosen) {
      const key = JSON.stringify(variant.env);
      if (coordinators.has(key)) continue;
      const coordinator = await startCoordinator({ FLOCK_INFERENCE_KEYS: INFERENCE_KEY, ...variant.env }, 'serving');
      coordinators.set(key, coordinator);
      await waitReady(coordinator.url);
      await load(coordinator.url, 4, false, 1); // warm-up
    }
    const modelSource = [...coordinators.values()][0]!.url;
    for (const floor of FLOORS) {
      const server = await startFloorProcess('http-floor-server.ts', [...floor.args, ...(floor.predict ? ['--predict', modelSource] : [])]);
      floors.set(floor.name, { server, binary: floor.binary });
      await load(server.url, 4, false, 1);
    }
    // The limit, measured right before and after the cells at the highest concurrency in each
    // repetition (this machine's speed drifts over minutes); the best of all is the one compared with.
    const measureLimit = async (): Promise<void> => {
      const limit = await rawPredictRowsPerSecond(modelSource, row(1), RAW_BATCH, SECONDS);
      raw = raw === null ? limit : { batched: Math.max(raw.batched, limit.batched), single: Math.max(raw.single, limit.single) };
    };
    for (let rep = 0; rep < REPEAT; rep++) {
      for (const connections of CONNECTIONS) {
        if (connections === top) await measureLimit();
        for (const variant of chosen) {
          if (variant.connections && !variant.connections.includes(connections)) continue;
          const coordinator = coordinators.get(JSON.stringify(variant.env))!;
          record(variant.name, await load(coordinator.url, connections, variant.binary ?? false, SECONDS, () => coordinator.cpuSeconds()), rep);
        }
        if (connections !== top) continue;
        for (const [name, { server, binary }] of floors) record(name, await load(server.url, connections, binary, SECONDS, () => server.cpuSeconds()), rep);
        await measureLimit();
      }
    }
  } finally {
    for (const coordinator of coordinators.values()) coordinator.close();
    for (const { server } of floors.values()) server.close();
  }
  // Each cell: the repetition with the best throughput (the least disturbed by other load).
  const cells: Cell[] = [];
  for (const variant of [...chosen, ...FLOORS.map((floor) => ({ name: floor.name, connections: [top] }))]) {
    for (const connections of variant.connections ?? CONNECTIONS) {
      const best = (samples.get(`${variant.name}|${connections}`) ?? []).sort((a, b) => b.requestsPerSecond - a.requestsPerSecond)[0];
      if (best) cells.push({ variant: variant.name, ...best });
    }
  }
  const limit = raw!;
  const at = (variant: string, connections: number) => cells.find((cell) => cell.variant === variant && cell.connections === connections);
  const batched = at(VARIANTS[0]!.name, top);
  const unbatched = at(VARIANTS[2]!.name, top);
  const logOff = at(VARIANTS[1]!.name, top);
  const express = at(VARIANTS[7]!.name, top);
  const binaryUnbatched = at(VARIANTS[5]!.name, top);
  const binaryLogOff = at(VARIANTS[6]!.name, top);
  const binaryLogOffUnbatched = at(VARIANTS[8]!.name, top);
  const [bareFloor, parseFloor, binaryFloor, loggedFloor, predictFloor, predictLoggedFloor] = FLOORS.map((floor) => at(floor.name, top));
  const binary = at(VARIANTS[4]!.name, top);
  const goalRate = limit.batched / 2;
  const predictMs = 1000 / limit.batched;
  const goalCores = loggedFloor ? (goalRate * (loggedFloor.cpuMsPerRequest + loggedFloor.loadCpuMsPerRequest + predictMs)) / 1000 : NaN;
  /** The same for the server alone (the load generator elsewhere), at the prescribed architecture's floor. */
  const serverGoalCores = predictLoggedFloor ? (goalRate * predictLoggedFloor.cpuMsPerRequest) / 1000 : NaN;
  /** Cores the server and the load generator kept busy together in a cell (the machine has machine.cpus). */
  const coresBusy = (cell: Cell): number => (cell.requestsPerSecond * (cell.cpuMsPerRequest + cell.loadCpuMsPerRequest)) / 1000;
  const share = (cell: Cell): string =>
    `${cell.requestsPerSecond.toFixed(0)} requests/s (**${((100 * cell.requestsPerSecond) / limit.batched).toFixed(0)}%** of the raw batched throughput)`;
  const machine = machineInfo();
  const lines = [
    '# Serving: the global model over the Open Inference Protocol',
    '',
    `\`pnpm bench:serving --seconds ${SECONDS}\`: the default 2NN (784 -> 200 -> 200 -> 10, 199,210 parameters) served by a coordinator process`,
    '(`server/dist/main.js`, one inference worker thread, the infer route on its fast path in front of express unless noted), loaded by autocannon 8 from the bench process with one-row requests',
    `(784 FP32 values; JSON unless noted; "binary tensors": the binary tensor extension for the input and the output, as V2 clients' binary mode sends them). ${SECONDS} s per cell after a 1 s warm-up; cells interleaved, ${REPEAT} repetitions, the best of each shown (and the best raw limit). Machine: ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node};`,
    'the coordinator, its worker thread and autocannon share them.',
    '',
    '| variant | connections | requests/s | p50 ms | p99 ms | errors | server CPU ms/request | load generator CPU ms/request | cores busy |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...cells.map(
      (c) =>
        `| ${c.variant} | ${c.connections} | ${c.requestsPerSecond.toFixed(0)} | ${c.p50} | ${c.p99} | ${c.errors} | ${c.cpuMsPerRequest.toFixed(3)} | ${c.loadCpuMsPerRequest.toFixed(3)} | ${coresBusy(c).toFixed(2)} |`,
    ),
    '',
    `The limit, same run: \`model.predict\` in one worker thread (the serving pool's, no HTTP), back to back: **${limit.batched.toFixed(0)} rows/s** on batches of ${RAW_BATCH},`,
    `${limit.single.toFixed(0)} rows/s on batches of 1 (the best of ${2 * REPEAT} measurements, right before and after each repetition's cells at ${top} connections).`,
    'Cores busy: the server and the load generator together, CPU seconds per second of the cell.',
    '',
    ...(batched && unbatched && logOff
      ? [
          `- At ${top} connections, batching on, log on: ${batched.requestsPerSecond.toFixed(0)} requests/s = **${((100 * batched.requestsPerSecond) / limit.batched).toFixed(0)}% of the raw batched throughput** (goal: at least 50%).`,
          `- Batching on / off at ${top} connections (log on): **${(batched.requestsPerSecond / unbatched.requestsPerSecond).toFixed(1)}x** (goal: at least 5x).`,
          `- The log's cost at ${top} connections (batching on): ${logOff.requestsPerSecond.toFixed(0)} requests/s without it, ${batched.requestsPerSecond.toFixed(0)} with it (${((100 * batched.requestsPerSecond) / logOff.requestsPerSecond).toFixed(0)}%; goal: not halved).`,
        ]
      : []),
    ...(batched && express
      ? [
          `- The fast path (node:http listener in front of express) at ${top} connections: ${batched.requestsPerSecond.toFixed(0)} requests/s, ${batched.cpuMsPerRequest.toFixed(2)} CPU ms/request; through express and Nest: ${express.requestsPerSecond.toFixed(0)} requests/s, ${express.cpuMsPerRequest.toFixed(2)} CPU ms/request (**${(batched.requestsPerSecond / express.requestsPerSecond).toFixed(1)}x**).`,
        ]
      : []),
    ...(bareFloor && parseFloor && binaryFloor && loggedFloor
      ? [
          `- The floor, same run, ${top} connections: processes with only the coordinator's HTTP layer (node:http and its keep-alive connections, boundary/fast-connections.ts; no framework, no model) that read each request and answer a fixed response. JSON bodies: ${share(bareFloor)}; parsing the JSON too: ${share(parseFloor)}. Binary tensors: ${share(binaryFloor)}; keeping the inference log too (a SHA-256 digest and a SQLite record per request, the coordinator's own writer and store): ${share(loggedFloor)}.`,
          ...(binary ? [`- Binary tensors through the coordinator (batching and log on): ${share(binary)}.`] : []),
          ...(binary && binaryUnbatched && binaryLogOff && binaryLogOffUnbatched
            ? [
                `- Binary tensors, batching on / off (log on): **${(binary.requestsPerSecond / binaryUnbatched.requestsPerSecond).toFixed(1)}x**; with the log off and batching on: ${share(binaryLogOff)}, and batching on / off with the log off: **${(binaryLogOff.requestsPerSecond / binaryLogOffUnbatched.requestsPerSecond).toFixed(1)}x**. The model itself, batches of ${RAW_BATCH} against batches of 1: ${(limit.batched / limit.single).toFixed(1)}x.`,
              ]
            : []),
          ...(predictFloor
            ? [
                `- The floor with the prediction (the HTTP layer, the coordinator's dynamic batcher and one inference thread; no checks, no log, no metrics, a fixed JSON header): ${share(predictFloor)}; ${(predictFloor.requestsPerSecond / limit.single).toFixed(1)}x the model's own one-row rate.${predictLoggedFloor ? ` Keeping the inference log too (the architecture the issue prescribes, and nothing else): ${share(predictLoggedFloor)}.` : ''}`,
              ]
            : []),
          `- The CPU the goal's rate needs: ${goalRate.toFixed(0)} requests/s (50% of the limit) x (${loggedFloor.cpuMsPerRequest.toFixed(3)} ms for HTTP and the log, as the floor above spends them, + ${loggedFloor.loadCpuMsPerRequest.toFixed(3)} ms for the load generator + ${predictMs.toFixed(3)} ms of batched \`model.predict\` per row) = **${goalCores.toFixed(2)} of the machine's ${machine.cpus} cores**, before the server checks, batches or answers anything.`,
          ...(predictLoggedFloor
            ? [
                `- With the load generator on another machine: ${goalRate.toFixed(0)} requests/s x ${predictLoggedFloor.cpuMsPerRequest.toFixed(3)} ms, the server CPU per request of the floor with the prediction and the log (the prescribed architecture, no checks) = **${serverGoalCores.toFixed(2)} of the machine's ${machine.cpus} cores**.`,
              ]
            : []),
        ]
      : []),
    '',
  ];
  const markdown = lines.join('\n');
  console.log(markdown);
  if (args.out) writeFileSync(args.out, markdown);
}

await main();
