/**
 * The serverless package end to end: `package:serverless` (the built packager, as a process) takes
 * version 1 from a real coordinator (the built one, as a process, with the 2NN it seeds), the zip is
 * unzipped and its `index.js` required, and the handler is invoked with recorded API Gateway proxy
 * events (fixtures/) and fetch Requests. Its predictions must equal the coordinator's for the same
 * bodies. `pnpm build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import yauzl from 'yauzl';
import {
  apiGatewayResultSchema,
  serverlessManifestSchema,
  v2ErrorSchema,
  v2InferResponseSchema,
  type ApiGatewayResult,
  type V2InferResponse,
} from '../../src/contract/index.js';
import type { HandlerOptions, Handlers } from '../../src/serverless/handler.js';
import { AWS_LAMBDA_LIMITS } from '../../src/serverless/packager/limits.js';
import { coordinatorStarted } from '../support/coordinator-child.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const PACKAGER = resolve(import.meta.dirname, '../../dist/serverless/packager/main.js');
const FIXTURES = resolve(import.meta.dirname, 'fixtures');
// Not imported from support/coordinator.ts, which loads TensorFlow.js into this process: the zip's
// index.js brings its own copy, and two copies would share one global kernel registry.
const CLIENT_TOKEN = 'test-client-token-0123456789';
const OPERATOR_TOKEN = 'test-operator-token-0123456789';
/** The key the fixtures were recorded with. */
const KEY = 'serverless-fixture-key-0123456789';

interface ZipModule extends Handlers {
  createHandlers(options: HandlerOptions): Handlers;
}

interface FixtureEvent {
  path?: string;
  rawPath?: string;
  httpMethod?: string;
  headers: Record<string, string>;
  body?: string | null;
  isBase64Encoded: boolean;
}

function fixture(name: string): FixtureEvent {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as FixtureEvent;
}

function runPackager(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [PACKAGER, ...args], { env: { ...process.env, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** Extracts every entry of the zip into `dir` (with yauzl); returns the entries' names and their total uncompressed size. */
function unzip(zipPath: string, dir: string): Promise<{ names: string[]; unzippedBytes: number }> {
  return new Promise((resolveUnzip, reject) => {
    yauzl.open(zipPath, { lazyEntries: true }, (error, zip) => {
      if (error) return reject(error);
      const names: string[] = [];
      let unzippedBytes = 0;
      zip.on('entry', (entry: yauzl.Entry) => {
        names.push(entry.fileName);
        unzippedBytes += entry.uncompressedSize;
        zip.openReadStream(entry, (streamError, stream) => {
          if (streamError) return reject(streamError);
          const chunks: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.on('end', () => {
            const target = join(dir, entry.fileName);
            mkdirSync(dirname(target), { recursive: true });
            // Written with fs, as the Lambda runtime finds the files after extracting the zip.
            import('node:fs').then(({ writeFileSync }) => writeFileSync(target, Buffer.concat(chunks)), reject).then(() => zip.readEntry(), reject);
          });
        });
      });
      zip.on('end', () => resolveUnzip({ names, unzippedBytes }));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** The event's request sent to the coordinator over HTTP (same method, body bytes and headers, the path without the stage). */
async function askCoordinator(url: string, event: FixtureEvent): Promise<Response> {
  const path = (event.path ?? event.rawPath!).replace(/^\/prod/, '');
  const body = event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8') : undefined;
  return fetch(`${url}${path}`, { method: event.httpMethod ?? 'POST', headers: event.headers, body });
}

/** The first output's values: from JSON, or from the bytes after the header of the binary tensor extension. */
function outputValues(headers: Record<string, string>, body: Buffer): { response: V2InferResponse; values: number[] } {
  const headerLength = headers['inference-header-content-length'];
  if (headerLength === undefined) {
    const response = v2InferResponseSchema.parse(JSON.parse(body.toString('utf8')));
    return { response, values: response.outputs[0]!.data! };
  }
  const length = Number(headerLength);
  const response = v2InferResponseSchema.parse(JSON.parse(body.subarray(0, length).toString('utf8')));
  const bytes = body.subarray(length);
  return { response, values: Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))) };
}

function resultBody(result: ApiGatewayResult): Buffer {
  return Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
}

function headersOf(response: Response): Record<string, string> {
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => (out[name] = value));
  return out;
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  const worst = Math.max(...actual.map((value, i) => Math.abs(value - expected[i]!)));
  expect(worst).toBeLessThan(1e-6);
}

describe('serverless package', () => {
  const work = mkdtempSync(join(tmpdir(), 'flock-serverless-'));
  const zipPath = join(work, 'out', 'flock-inference.zip');
  const unzipped = join(work, 'unzipped');
  let coordinator: ChildProcess | null = null;
  let url = '';
  let zipModule: ZipModule;
  let entries: { names: string[]; unzippedBytes: number };
  let packagerOutput = '';
  const logged: string[] = [];

  beforeAll(async () => {
    expect(existsSync(MAIN) && existsSync(PACKAGER), 'build the server first (pnpm build)').toBe(true);
    coordinator = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        FLOCK_DATA_DIR: join(work, 'data'),
        FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
        FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
        FLOCK_INFERENCE_KEYS: KEY,
        FLOCK_DEFAULT_MODEL_EXAMPLES: '600',
        FLOCK_TEST_SET: 'none',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    ({ url } = await coordinatorStarted(coordinator, 'serverless source'));
    const packaged = await runPackager(['--coordinator', url, '--version', '1', '--token', OPERATOR_TOKEN, '--out', zipPath]);
    expect(packaged.stderr).toBe('');
    expect(packaged.code).toBe(0);
    packagerOutput = packaged.stdout;
    entries = await unzip(zipPath, unzipped);
    // The Lambda runtime sets the function's environment before it loads the code.
    vi.stubEnv('FLOCK_INFERENCE_KEYS', KEY);
    vi.spyOn(console, 'log').mockImplementation((line: string) => void logged.push(line));
    zipModule = createRequire(import.meta.url)(join(unzipped, 'index.js')) as ZipModule;
  }, 180_000);

  afterAll(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    coordinator?.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  it('is a zip under AWS Lambda limits with the bundled entry point, the wasm binaries, the model and its manifest', () => {
    const zipped = statSync(zipPath).size;
    expect(zipped).toBeLessThan(AWS_LAMBDA_LIMITS.zippedBytes);
    expect(entries.unzippedBytes).toBeLessThan(AWS_LAMBDA_LIMITS.unzippedBytes);
    // What the packager reports is what the zip holds.
    expect(packagerOutput).toContain(`${(zipped / 1048576).toFixed(2)} MiB zipped`);
    expect(entries.names.sort()).toEqual(
      [
        'flock-serverless.json',
        'index.js',
        'model/model.json',
        'model/weights.bin',
        'tfjs-backend-wasm-simd.wasm',
        'tfjs-backend-wasm-threaded-simd.wasm',
        'tfjs-backend-wasm.wasm',
      ].sort(),
    );
    const manifest = serverlessManifestSchema.parse(JSON.parse(readFileSync(join(unzipped, 'flock-serverless.json'), 'utf8')));
    expect(manifest).toMatchObject({ modelVersion: 1, modelPath: 'model/model.json', source: `${url}/api/models/1` });
    // The 2NN: 199,210 float32 weights.
    expect(statSync(join(unzipped, 'model/weights.bin')).size).toBe(199_210 * 4);
  });

  it('answers readiness and metadata fixtures as the coordinator does, on the wasm backend', async () => {
    const ready = apiGatewayResultSchema.parse(await zipModule.handler(fixture('http-v2-ready.json')));
    expect(ready).toMatchObject({ statusCode: 200, isBase64Encoded: false });
    expect(JSON.parse(ready.body)).toEqual({ ready: true });
    expect(logged.map((line) => JSON.parse(line) as unknown)).toContainEqual({ level: 'info', msg: 'model loaded', version: 1, backend: 'wasm' });

    const metadata = await zipModule.handler(fixture('http-v2-metadata.json'));
    expect(metadata.statusCode).toBe(200);
    const fromCoordinator = await askCoordinator(url, { ...fixture('http-v2-metadata.json'), httpMethod: 'GET' });
    expect(JSON.parse(metadata.body)).toEqual(await fromCoordinator.json());
  });

  for (const name of ['rest-v1-infer-json.json', 'rest-v1-infer-binary.json', 'http-v2-infer-base64.json']) {
    it(`predicts what the coordinator predicts: ${name}`, async () => {
      const event = fixture(name);
      const result = apiGatewayResultSchema.parse(await zipModule.handler(event));
      expect(result.statusCode, result.body.slice(0, 300)).toBe(200);
      const mine = outputValues(result.headers, resultBody(result));
      const answer = await askCoordinator(url, event);
      expect(answer.status).toBe(200);
      const theirs = outputValues(headersOf(answer), Buffer.from(await answer.arrayBuffer()));
      expect(mine.response.model_version).toBe('1');
      expect(mine.response.model_name).toBe('global');
      expect(mine.response.id).toBe(theirs.response.id);
      expect(mine.response.outputs.map(({ name: n, shape, datatype }) => ({ n, shape, datatype }))).toEqual(
        theirs.response.outputs.map(({ name: n, shape, datatype }) => ({ n, shape, datatype })),
      );
      expectClose(mine.values, theirs.values);
      // Binary in, binary out: base64 to API Gateway.
      expect(result.isBase64Encoded).toBe(name.includes('binary'));
    });
  }

  it('refuses a request without an inference key (401) or with a wrong one, in the V2 error format', async () => {
    const missing = await zipModule.handler(fixture('rest-v1-infer-no-key.json'));
    expect(missing.statusCode).toBe(401);
    expect(v2ErrorSchema.strict().parse(JSON.parse(missing.body)).error).toMatch(/inference key required/);
    const event = fixture('rest-v1-infer-json.json');
    const wrong = await zipModule.handler({ ...event, headers: { ...event.headers, Authorization: 'Bearer not-the-inference-key-at-all' } });
    expect(wrong.statusCode).toBe(401);
  });

  it('answers 413 in the V2 error format for a body over FLOCK_INFERENCE_MAX_BODY_BYTES, as an event and as a fetch Request', async () => {
    const small = zipModule.createHandlers({ env: { FLOCK_INFERENCE_KEYS: KEY, FLOCK_INFERENCE_MAX_BODY_BYTES: '2048' }, packageDir: unzipped });
    for (const name of ['rest-v1-infer-json.json', 'http-v2-infer-base64.json', 'rest-v1-infer-binary.json']) {
      const result = await small.handler(fixture(name));
      expect(result.statusCode, name).toBe(413);
      expect(JSON.parse(result.body)).toEqual({ error: 'request body too large (at most 2048 bytes)' });
    }
    const event = fixture('rest-v1-infer-json.json');
    const declared = await small.fetch(new Request('https://fn.example/v2/models/global/infer', { method: 'POST', headers: event.headers, body: event.body }));
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({ error: 'request body too large (at most 2048 bytes)' });
    // No Content-Length: the stream is cut once it passes the limit.
    const chunk = new TextEncoder().encode('x'.repeat(1024));
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(chunk);
      },
    });
    const streamed = await small.fetch(
      new Request('https://fn.example/v2/models/global/infer', {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}` },
        body: stream,
        duplex: 'half',
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect(pulled).toBeLessThan(10);
    // Under the limit it answers.
    const fits = await small.handler(fixture('http-v2-ready.json'));
    expect(fits.statusCode).toBe(200);
  });

  it('serves the same predictions as a fetch handler, (Request) => Promise<Response>', async () => {
    const event = fixture('rest-v1-infer-json.json');
    const response = await zipModule.fetch(
      new Request('https://fn.example/v2/models/global/infer', { method: 'POST', headers: event.headers, body: event.body }),
    );
    expect(response.status).toBe(200);
    const mine = outputValues(headersOf(response), Buffer.from(await response.arrayBuffer()));
    const answer = await askCoordinator(url, event);
    expectClose(mine.values, outputValues(headersOf(answer), Buffer.from(await answer.arrayBuffer())).values);
    const live = await zipModule.fetch(new Request('https://fn.example/v2/health/live'));
    expect(await live.json()).toEqual({ live: true });
  });

  it('answers every other failure in the V2 error format with the coordinator status codes', async () => {
    const event = fixture('rest-v1-infer-json.json');
    const call = async (patch: Partial<FixtureEvent>) => {
      const result = await zipModule.handler({ ...event, ...patch });
      return { status: result.statusCode, error: v2ErrorSchema.strict().parse(JSON.parse(result.body)).error };
    };
    expect(await call({ path: '/v2/models/other/infer' })).toMatchObject({ status: 404, error: expect.stringMatching(/unknown model "other"/) as unknown });
    expect(await call({ path: '/v2/models/global/versions/2/infer' })).toMatchObject({
      status: 404,
      error: expect.stringMatching(/version 2 is not packaged/) as unknown,
    });
    expect(await call({ path: '/v2/models/global/versions/x/infer' })).toMatchObject({ status: 400 });
    expect(await call({ path: '/v2/models/global/infer', httpMethod: 'GET' })).toMatchObject({ status: 405 });
    expect(await call({ path: '/api/status' })).toMatchObject({ status: 404 });
    expect(await call({ body: '{"inputs": [' })).toEqual({ status: 400, error: 'request body is not valid JSON' });
    const wrongShape = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 783], datatype: 'FP32', data: new Array(783).fill(0) }] });
    expect(await call({ body: wrongShape })).toMatchObject({
      status: 400,
      error: expect.stringMatching(/shape \[1, 783\] does not match \[-1, 784\]/) as unknown,
    });
    const notFinite = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'INT8', data: new Array(784).fill(0) }] });
    expect(await call({ body: notFinite })).toMatchObject({ status: 400, error: expect.stringMatching(/datatype INT8 is not served/) as unknown });
    // Not an API Gateway event at all.
    const garbage = await zipModule.handler({ hello: 'world' });
    expect(garbage.statusCode).toBe(400);
    expect(JSON.parse(garbage.body)).toMatchObject({ error: expect.stringMatching(/not an API Gateway proxy event/) as unknown });
  });

  it('says so on every request when FLOCK_INFERENCE_KEYS is missing or too short, never echoing it', async () => {
    for (const env of [{}, { FLOCK_INFERENCE_KEYS: 'short-key' }]) {
      const handlers = zipModule.createHandlers({ env, packageDir: unzipped });
      const result = await handlers.handler(fixture('rest-v1-infer-json.json'));
      expect(result.statusCode).toBe(500);
      const { error } = JSON.parse(result.body) as { error: string };
      expect(error).toMatch(/^the function is misconfigured: .*FLOCK_INFERENCE_KEYS/);
      expect(error).not.toContain('short-key');
    }
  });

  it('packages the same model from the coordinator data directory (the version it seeded)', async () => {
    const fromDataDir = join(work, 'out', 'from-data-dir.zip');
    const packaged = await runPackager(['--data-dir', join(work, 'data'), '--out', fromDataDir]);
    expect(packaged.stderr).toBe('');
    expect(packaged.code).toBe(0);
    const dir = join(work, 'unzipped-data-dir');
    await unzip(fromDataDir, dir);
    expect(readFileSync(join(dir, 'model/weights.bin')).equals(readFileSync(join(unzipped, 'model/weights.bin')))).toBe(true);
    expect(serverlessManifestSchema.parse(JSON.parse(readFileSync(join(dir, 'flock-serverless.json'), 'utf8'))).modelVersion).toBe(1);
  }, 60_000);

  it('fails with exit code 1 and a clear message, writing nothing, when the zip is over a limit', async () => {
    const out = join(work, 'out', 'too-large.zip');
    const zipped = await runPackager(['--data-dir', join(work, 'data'), '--out', out, '--max-zipped-bytes', '100000']);
    expect(zipped.code).toBe(1);
    expect(zipped.stderr).toMatch(/error: the serverless package is too large: the zip is \d+ bytes \([\d.]+ MiB\), over the limit of 100000 bytes/);
    expect(zipped.stderr).toMatch(/nothing was written/);
    const unzippedLimit = await runPackager(['--data-dir', join(work, 'data'), '--out', out, '--max-unzipped-bytes', '1000000']);
    expect(unzippedLimit.code).toBe(1);
    expect(unzippedLimit.stderr).toMatch(/its contents are \d+ bytes \([\d.]+ MiB\) unzipped, over the limit of 1000000 bytes/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  }, 60_000);

  it('refuses ambiguous or missing sources as a usage error (exit 2)', async () => {
    expect((await runPackager([])).code).toBe(2);
    const both = await runPackager(['--data-dir', join(work, 'data'), '--model', 'x.json']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --coordinator, --data-dir and --model/);
    const missing = await runPackager(['--data-dir', join(work, 'nowhere')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/holds no coordinator database/);
  });
});
