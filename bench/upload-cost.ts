/**
 * What one upload costs the coordinator, from the socket's bytes to the fold: the coordinator runs
 * as its own process, D raw devices (one bench process) are selected for one round and upload a 2NN
 * delta one after another, each waiting for its acknowledgement; the coordinator's CPU time over
 * those uploads (from /proc), divided by D, is set against a memcpy of the upload's bytes measured
 * here in the same run. Two variants, same run: WebSocket frames unmasked by `bufferutil` (native,
 * the default since it is a dependency) and by ws's byte-wise JS loop (WS_NO_BUFFER_UTIL=1, the
 * coordinator before). The coordinator's CPU includes the commit at the round's end (1/D of it).
 *
 *   pnpm build && pnpm bench:upload [--devices 60] [--repeat 3]
 *
 * Prints Markdown to stdout (bench/results/upload-cost.md holds a run).
 */
import { parseArgs } from 'node:util';
import { ClientEvent, ServerEvent, type ModelFetchResult } from '../client-sdk/src/protocol/index.js';
import { noKeepAliveFetch } from '../server/src/simulation/http-fetch.js';
import { connectDevice, OPERATOR_TOKEN, startCoordinator, type RawSocket } from './lib/coordinator-process.js';
import { fillRandom, machineInfo, median, repeat, sink, timed } from './lib/measure.js';

const VARIANTS = [
  { name: 'bufferutil (native unmask)', env: { WS_NO_BUFFER_UTIL: undefined } },
  { name: 'ws JS unmask (WS_NO_BUFFER_UTIL=1)', env: { WS_NO_BUFFER_UTIL: '1' } },
] as const;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '60' },
    repeat: { type: 'string', default: '3' },
  },
});
const DEVICES = Number(args.devices);
const REPEAT = Number(args.repeat);

interface RoundCost {
  variant: string;
  rep: number;
  uploads: number;
  bytes: number;
  cpuMsPerUpload: number;
  wallMsPerUpload: number;
  status: string;
}

/** Median seconds of one memcpy of `bytes` (a fresh destination each time is not needed: same size, warm). */
function memcpySeconds(bytes: number): number {
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
  const coordinator = await startCoordinator({ ...variant.env, FLOCK_EVENT_RATE_LIMITS: 'off', FLOCK_MAX_SELECTED_PER_ADDRESS: '0' }, 'upload');
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
    for (const [d, socket] of sockets.entries()) {
      const { roundId, modelVersion } = configurations[d]!;
      // A copy per upload, as each device would send its own delta.
      const upload = { roundId, modelVersion, numExamples: 100, trainLoss: 0.5, delta: { shapes, data: Buffer.from(delta.buffer.slice(0)) } };
      const result = (await socket.timeout(60_000).emitWithAck(ClientEvent.update, upload)) as { accepted: boolean; reason?: string };
      if (!result.accepted) throw new Error(`upload refused: ${result.reason}`);
    }
    const wallSeconds = (performance.now() - started) / 1000;
    let status = 'running';
    for (let i = 0; i < 200 && !['committed', 'failed', 'aborted'].includes(status); i++) {
      await new Promise((done) => setTimeout(done, 50));
      status = (await api<{ status: string }>(coordinator.url, `/api/rounds/${round.id}`)).status;
    }
    const cpuSeconds = coordinator.cpuSeconds() - cpuBefore;
    return {
      variant: variant.name,
      rep,
      uploads: DEVICES,
      bytes,
      cpuMsPerUpload: (1000 * cpuSeconds) / DEVICES,
      wallMsPerUpload: (1000 * wallSeconds) / DEVICES,
      status,
    };
  } finally {
    sockets.forEach((socket) => socket.disconnect());
    coordinator.close();
  }
}

const rows: RoundCost[] = [];
for (let rep = 1; rep <= REPEAT; rep++) {
  // Interleaved, so that load from elsewhere on the shared cores hits both variants alike.
  for (const variant of VARIANTS) rows.push(await measureRound(variant, rep));
}
const bytes = rows[0]!.bytes;
const memcpyMs = 1000 * memcpySeconds(bytes);

console.log(`# What one upload costs the coordinator\n`);
console.log(`\`pnpm bench:upload --devices ${DEVICES} --repeat ${REPEAT}\`; ${JSON.stringify(machineInfo())}.\n`);
console.log(`One 2NN delta: ${bytes.toLocaleString('en')} bytes; a memcpy of them here: ${memcpyMs.toFixed(3)} ms (median).\n`);
console.log('| rep | unmasking | uploads | round | coordinator CPU per upload (ms) | x memcpy | wall per upload (ms) |');
console.log('|---|---|---|---|---|---|---|');
for (const row of rows) {
  console.log(
    `| ${row.rep} | ${row.variant} | ${row.uploads} | ${row.status} | ${row.cpuMsPerUpload.toFixed(2)} | ${(row.cpuMsPerUpload / memcpyMs).toFixed(0)} | ${row.wallMsPerUpload.toFixed(2)} |`,
  );
}
console.log('\n| unmasking | median CPU per upload (ms) | x memcpy |');
console.log('|---|---|---|');
for (const variant of VARIANTS) {
  const cpu = median(rows.filter((row) => row.variant === variant.name).map((row) => row.cpuMsPerUpload));
  console.log(`| ${variant.name} | ${cpu.toFixed(2)} | ${(cpu / memcpyMs).toFixed(0)} |`);
}
