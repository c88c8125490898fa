/**
 * Secure aggregation's cost against plain rounds, on the 2NN (199,210 values), in one process and
 * one run: n devices' sessions (client-sdk/src/secagg) and the coordinator's session exchange the
 * protocol's real messages (the bytes each would send, counted from the messages themselves) with
 * real WebCrypto; sockets are left out (the integration tests and e2e cover them).
 *
 *   pnpm bench:secagg [--devices 10,50,100] [--dropout 0,0.1] [--key-agreement P-256|X25519]
 *
 * For each n and dropout (the share of devices that drop after sharing keys, before their masked
 * input: the costliest case, their pairwise masks must be rebuilt and removed):
 *   - device CPU ms (mean over devices; process CPU time, WebCrypto's thread pool included): key
 *     generation, sharing, masking, revealing; each device runs alone here, so this is one device's work;
 *   - bytes up and down per device (mean), against the plain float32 upload (4 · 199,210 bytes);
 *   - coordinator CPU ms: routing and the whole unmasking (and the unmasking's wall time), against
 *     the plain FedAvg fold of the same n float32 updates (float64 running sum, plain JS) in the same run;
 *   - the largest error of the secure mean against the float64 mean, and the stated bound.
 * Prints Markdown to stdout (bench/results/secagg.md holds a run).
 */
import { parseArgs } from 'node:util';
import { KEY_AGREEMENTS, type KeyAgreement } from '../client-sdk/src/protocol/secagg-messages.js';
import { SecAggDeviceError, SecAggDeviceSession, SecAggServerSession, sumPrecision } from '../client-sdk/src/secagg/index.js';
import { fillRandom, machineInfo } from './lib/measure.js';

const PARAMETERS = 199_210;
const PLAIN_BYTES = PARAMETERS * 4;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '10,50,100' },
    dropout: { type: 'string', default: '0,0.1' },
    neighbours: { type: 'string' },
    'key-agreement': { type: 'string', default: 'P-256' },
    'no-header': { type: 'boolean', default: false },
  },
});
const NEIGHBOURS = args.neighbours === undefined ? undefined : Number(args.neighbours);
const SIZES = args.devices.split(',').map(Number);
const DROPOUTS = args.dropout.split(',').map(Number);
const KEY_AGREEMENT = args['key-agreement'] as KeyAgreement;
if (!KEY_AGREEMENTS.includes(KEY_AGREEMENT)) throw new Error(`--key-agreement must be one of ${KEY_AGREEMENTS.join(', ')}`);

interface Row {
  devices: number;
  dropout: number;
  neighbours: number;
  deviceCpuMs: number;
  bytesUp: number;
  bytesDown: number;
  coordinatorMs: number;
  unmaskMs: number;
  unmaskWallMs: number;
  plainFoldMs: number;
  maxError: number;
  bound: number;
  refusedToReveal: number;
}

const bytesOf = (data: ArrayBuffer | Uint8Array): number => data.byteLength;

async function run(devices: number, dropout: number): Promise<Row> {
  const deltas = Array.from({ length: devices }, (_, i) => {
    const delta = new Float32Array(PARAMETERS);
    fillRandom(delta, 100 + i, 0.01);
    return delta;
  });
  const weights = deltas.map((_, i) => 500 + ((i * 37) % 200));
  const dropped = new Set(Array.from({ length: Math.round(devices * dropout) }, (_, i) => devices - 1 - i));
  const ids = deltas.map((_, i) => `device-${i}`);
  const deviceMs = new Array<number>(devices).fill(0);
  const up = new Array<number>(devices).fill(0);
  const down = new Array<number>(devices).fill(0);
  let coordinatorMs = 0;
  // CPU time of the process (user + system, WebCrypto's thread pool included): the steps run one at a
  // time, so each delta is that step's work, whatever else the machine's other users are running.
  const cpuMs = (): number => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const onDevice = async <T>(i: number, work: () => Promise<T> | T): Promise<T> => {
    const started = cpuMs();
    const result = await work();
    deviceMs[i]! += cpuMs() - started;
    return result;
  };
  const onCoordinator = async <T>(work: () => Promise<T> | T): Promise<T> => {
    const started = cpuMs();
    const result = await work();
    coordinatorMs += cpuMs() - started;
    return result;
  };

  const server = new SecAggServerSession({
    roundId: 'bench',
    modelVersion: 1,
    deltaLength: PARAMETERS,
    clipNorm: 10,
    maxWeight: 700,
    thresholdFraction: 0.5,
    keyAgreement: KEY_AGREEMENT,
    graphSeed: 1,
    minDevices: 2,
    ...(NEIGHBOURS !== undefined ? { neighbours: NEIGHBOURS } : {}),
  });
  const sessions: SecAggDeviceSession[] = [];
  for (let i = 0; i < devices; i++) {
    const session = await onDevice(i, () => SecAggDeviceSession.create('bench', KEY_AGREEMENT));
    sessions.push(session);
    const keys = session.publicKeys();
    up[i]! += keys.encryptionKey.byteLength + keys.maskingKey.byteLength;
    await onCoordinator(() => server.receiveAdvertise(ids[i]!, { roundId: 'bench', modelVersion: 1, ...keys }));
  }
  const rosters = await onCoordinator(() => server.closeAdvertise(Date.now() + 60_000));
  if ('failed' in rosters) throw new Error(rosters.failed);
  const neighbours = rosters.rosters.get(ids[0]!)!.neighbours.length;
  for (let i = 0; i < devices; i++) {
    const roster = rosters.rosters.get(ids[i]!)!;
    down[i]! += 4 * roster.neighbours.length + bytesOf(roster.neighboursBytes);
    const shares = await onDevice(i, () => sessions[i]!.shareKeys(roster));
    up[i]! += 4 * shares.recipients.length + bytesOf(shares.recipientsBytes);
    await onCoordinator(() => server.receiveShares(ids[i]!, shares));
  }
  const relays = await onCoordinator(() => server.closeShareKeys(Date.now() + 60_000));
  if ('failed' in relays) throw new Error(relays.failed);
  for (let i = 0; i < devices; i++) {
    const relay = relays.relays.get(ids[i]!)!;
    down[i]! += 4 * relay.senders.length + bytesOf(relay.sendersBytes);
    if (dropped.has(i)) continue;
    const masked = await onDevice(i, () => sessions[i]!.maskInput(relay, { delta: deltas[i]!, numExamples: weights[i]!, trainLoss: 0.3 }));
    up[i]! += masked.byteLength;
    const ack = await onCoordinator(() => server.receiveMasked(ids[i]!, { roundId: 'bench', data: new Uint8Array(masked.buffer) }));
    if (!ack.accepted) throw new Error(ack.message);
  }
  let refusedToReveal = 0;
  const requests = await onCoordinator(() => server.closeMaskedInput(Date.now() + 60_000));
  if ('failed' in requests) throw new Error(requests.failed);
  for (let i = 0; i < devices; i++) {
    const request = requests.requests.get(ids[i]!);
    if (!request) continue;
    down[i]! += 4 * (request.survivors.length + request.dropped.length);
    let reveal: ReturnType<SecAggDeviceSession['unmask']>;
    try {
      reveal = await onDevice(i, () => sessions[i]!.unmask(request));
    } catch (error) {
      // Too few survivors among its neighbours: the device refuses to reveal (it counts as dropping at unmasking).
      if (!(error instanceof SecAggDeviceError)) throw error;
      refusedToReveal++;
      continue;
    }
    up[i]! += 4 * (reveal.selfMask.length + reveal.maskKey.length) + bytesOf(reveal.selfMaskBytes) + bytesOf(reveal.maskKeyBytes);
    await onCoordinator(() => server.receiveReveal(ids[i]!, reveal));
  }
  const unmaskStarted = cpuMs();
  const unmaskWallStarted = performance.now();
  const result = await onCoordinator(() => server.finish());
  const unmaskMs = cpuMs() - unmaskStarted;
  const unmaskWallMs = performance.now() - unmaskWallStarted;
  if ('failed' in result) throw new Error(result.failed);

  // The plain baseline, same run: FedAvg's float64 running sum of the survivors' float32 updates.
  const survivors = deltas.map((_, i) => i).filter((i) => !dropped.has(i));
  const plainStarted = cpuMs();
  const sum = new Float64Array(PARAMETERS);
  let total = 0;
  for (const i of survivors) {
    const delta = deltas[i]!;
    const w = weights[i]!;
    for (let j = 0; j < PARAMETERS; j++) sum[j]! += w * delta[j]!;
    total += w;
  }
  const plainFoldMs = cpuMs() - plainStarted;
  let maxError = 0;
  for (let j = 0; j < PARAMETERS; j++) maxError = Math.max(maxError, Math.abs(result.sum.weightedDeltaSum[j]! / result.sum.totalWeight - sum[j]! / total));
  const mean = (values: number[], over: number[]): number => over.reduce((s, i) => s + values[i]!, 0) / over.length;
  return {
    devices,
    dropout,
    neighbours,
    deviceCpuMs: mean(deviceMs, survivors),
    bytesUp: mean(up, survivors),
    bytesDown: mean(down, survivors),
    coordinatorMs,
    unmaskMs,
    unmaskWallMs,
    plainFoldMs,
    maxError,
    bound: sumPrecision(result.params, result.summed) / result.sum.totalWeight,
    refusedToReveal,
  };
}

const rows: Row[] = [];
for (const devices of SIZES) for (const dropout of DROPOUTS) rows.push(await run(devices, dropout));

const fmt = (value: number, digits = 1): string => value.toFixed(digits);
if (!args['no-header']) printHeader();
for (const r of rows) {
  console.log(
    `| ${r.devices} | ${fmt(r.dropout * 100, 0)}% | ${r.neighbours} | ${fmt(r.deviceCpuMs)} | ${Math.round(r.bytesUp).toLocaleString('en')} | ${(r.bytesUp / PLAIN_BYTES).toFixed(4)} | ${Math.round(r.bytesDown).toLocaleString('en')} | ${fmt(r.coordinatorMs)} | ${fmt(r.unmaskMs)} | ${fmt(r.unmaskWallMs)} | ${fmt(r.plainFoldMs)} | ${r.maxError.toExponential(2)} | ${r.bound.toExponential(2)} | ${r.refusedToReveal} |`,
  );
}

function printHeader(): void {
  console.log(`# Secure aggregation vs plain rounds (2NN, ${PARAMETERS.toLocaleString('en')} values)\n`);
  const machine = machineInfo();
  console.log(
    `${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${machine.platform}; one process, sequential (each device's work is its own); key agreement ${KEY_AGREEMENT}.\n`,
  );
  console.log(
    '| devices | dropped before masked input | neighbours k | device CPU ms | bytes up / device | × plain upload | bytes down / device | coordinator CPU ms (all phases) | of which unmasking (CPU ms) | unmasking wall ms | plain FedAvg fold CPU ms | max error of the mean | stated bound | refused to reveal |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
}
