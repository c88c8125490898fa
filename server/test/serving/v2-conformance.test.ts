/**
 * The Open Inference Protocol (KServe V2) against a real coordinator over real HTTP: health,
 * metadata, inference (JSON and the binary tensor extension), the protocol's errors, the inference
 * key, and the answer's version.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InferenceLogPage, V2InferResponse, V2ModelMetadata } from '../../src/contract/index.js';
import { OPERATOR_TOKEN, operatorFetch, type TestCoordinator } from '../support/coordinator.js';
import { runFlock } from '../cli/harness.js';
import { INFERENCE_KEY, startServingCoordinator, tinyRows, v2 } from './serving-helpers.js';

describe('V2 inference protocol', () => {
  let coordinator: TestCoordinator;
  let inputName: string;

  beforeAll(async () => {
    coordinator = await startServingCoordinator({ maxBodyBytes: 64 * 1024 });
  }, 60_000);
  afterAll(() => coordinator?.dispose());

  it('answers liveness without a key, and readiness once the workers have loaded the model', async () => {
    expect(await v2(coordinator.url, '/v2/health/live', undefined, null)).toEqual({ status: 200, body: { live: true } });
    let ready = await v2<{ ready: boolean }>(coordinator.url, '/v2/health/ready', undefined, null);
    const deadline = Date.now() + 30_000;
    while (!ready.body.ready && Date.now() < deadline) {
      expect(ready.status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 100));
      ready = await v2(coordinator.url, '/v2/health/ready', undefined, null);
    }
    expect(ready).toEqual({ status: 200, body: { ready: true } });
  }, 40_000);

  it('describes the model: name, versions, platform, FP32 inputs and outputs with -1 for the batch', async () => {
    const { status, body } = await v2<V2ModelMetadata>(coordinator.url, '/v2/models/global');
    expect(status).toBe(200);
    expect(body.name).toBe('global');
    expect(body.versions).toEqual(['1']);
    expect(body.platform).toBe('tensorflowjs_layers');
    expect(body.inputs).toHaveLength(1);
    expect(body.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 16] }]);
    expect(body.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: [-1, 10] }]);
    inputName = body.inputs[0]!.name;
    expect(await v2(coordinator.url, '/v2/models/global/versions/1')).toEqual({ status: 200, body });
    const server = await v2<{ name: string; extensions: string[] }>(coordinator.url, '/v2');
    expect(server.body).toMatchObject({ name: 'flock', extensions: ['binary_tensor_data'] });
  });

  it('infers: FP32 probabilities of shape [rows, 10], the version that computed them, the request id', async () => {
    const rows = tinyRows(3);
    const { status, body } = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
      id: 'my-request-1',
      inputs: [{ name: inputName, shape: [3, 16], datatype: 'FP32', data: rows }],
    });
    expect(status).toBe(200);
    expect(body.model_name).toBe('global');
    expect(body.model_version).toBe('1');
    expect(body.id).toBe('my-request-1');
    expect(body.parameters?.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.outputs).toHaveLength(1);
    const [output] = body.outputs;
    expect(output).toMatchObject({ datatype: 'FP32', shape: [3, 10] });
    expect(output!.data).toHaveLength(30);
    for (let r = 0; r < 3; r++) {
      const sum = output!.data!.slice(r * 10, r * 10 + 10).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(1, 5);
    }
    // Flat data is the same tensor, row-major; a pinned version answers the same.
    const flat = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/versions/1/infer', {
      inputs: [{ name: inputName, shape: [3, 16], datatype: 'FP32', data: rows.flat() }],
    });
    expect(flat.status).toBe(200);
    expect(flat.body.model_version).toBe('1');
    expect(flat.body.outputs[0]!.data).toEqual(output!.data);
  });

  it('speaks the binary tensor extension, in and out', async () => {
    const rows = tinyRows(2, 7);
    const values = Float32Array.from(rows.flat());
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: inputName, shape: [2, 16], datatype: 'FP32', parameters: { binary_data_size: values.byteLength } }],
        parameters: { binary_data_output: true },
      }),
    );
    const response = await fetch(`${coordinator.url}/v2/models/global/infer`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${INFERENCE_KEY}`,
        'Content-Type': 'application/octet-stream',
        'Inference-Header-Content-Length': String(header.byteLength),
      },
      body: Buffer.concat([header, Buffer.from(values.buffer)]),
    });
    expect(response.status).toBe(200);
    const headerLength = Number(response.headers.get('inference-header-content-length'));
    const bytes = Buffer.from(await response.arrayBuffer());
    const json = JSON.parse(bytes.subarray(0, headerLength).toString('utf8')) as V2InferResponse;
    expect(json.outputs[0]).toMatchObject({ datatype: 'FP32', shape: [2, 10], parameters: { binary_data_size: 80 } });
    const probabilities = new Float32Array(bytes.buffer.slice(bytes.byteOffset + headerLength, bytes.byteOffset + headerLength + 80));
    const asJson = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
      inputs: [{ name: inputName, shape: [2, 16], datatype: 'FP32', data: rows }],
    });
    expect(Array.from(probabilities)).toEqual(asJson.body.outputs[0]!.data);
  });

  it('refuses bad requests with 400 and { error } naming the problem', async () => {
    const infer = (input: Record<string, unknown>) =>
      v2<{ error: string }>(coordinator.url, '/v2/models/global/infer', {
        inputs: [{ name: inputName, shape: [1, 16], datatype: 'FP32', data: tinyRows(1)[0], ...input }],
      });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ shape: [1, 15] }, /shape \[1, 15\] does not match \[-1, 16\]/],
      [{ shape: [1, 4, 4] }, /does not match/],
      [{ datatype: 'INT32' }, /datatype INT32 is not served; send FP32/],
      [{ datatype: 'FP64' }, /datatype FP64/],
      [{ name: 'nope' }, /unknown input "nope"/],
      [{ data: [1, 2, 3] }, /3 values for shape \[1, 16\]/],
      [{ data: ['a', ...Array.from({ length: 15 }, () => 0)] }, /numbers only/],
      [{ shape: [0, 16], data: [] }, /no rows/],
    ];
    for (const [input, message] of cases) {
      const { status, body } = await infer(input);
      expect(status, JSON.stringify(input)).toBe(400);
      expect(Object.keys(body)).toEqual(['error']);
      expect(body.error).toMatch(message);
    }
    const noInputs = await v2<{ error: string }>(coordinator.url, '/v2/models/global/infer', { inputs: [] });
    expect(noInputs.status).toBe(400);
    expect(noInputs.body.error).toMatch(/invalid inference request/);
    const malformed = await fetch(`${coordinator.url}/v2/models/global/infer`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${INFERENCE_KEY}`, 'Content-Type': 'application/json' },
      body: '{"inputs": [',
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ error: 'request body is not valid JSON' });
  });

  it('answers 404 for an unknown model or version, 400 for a malformed version, 413 past the body limit', async () => {
    const body = { inputs: [{ name: inputName, shape: [1, 16], datatype: 'FP32', data: tinyRows(1)[0] }] };
    const unknownModel = await v2<{ error: string }>(coordinator.url, '/v2/models/resnet/infer', body);
    expect(unknownModel).toEqual({ status: 404, body: { error: expect.stringMatching(/unknown model "resnet"/) as unknown } });
    expect((await v2(coordinator.url, '/v2/models/resnet')).status).toBe(404);
    const unknownVersion = await v2<{ error: string }>(coordinator.url, '/v2/models/global/versions/99/infer', body);
    expect(unknownVersion).toEqual({ status: 404, body: { error: 'model version 99 does not exist' } });
    expect((await v2(coordinator.url, '/v2/models/global/versions/99')).status).toBe(404);
    const badVersion = await v2<{ error: string }>(coordinator.url, '/v2/models/global/versions/latest/infer', body);
    expect(badVersion).toEqual({ status: 400, body: { error: 'model version must be a positive integer' } });
    const large = await v2<{ error: string }>(coordinator.url, '/v2/models/global/infer', {
      inputs: [{ name: inputName, shape: [1000, 16], datatype: 'FP32', data: tinyRows(1000) }],
    });
    expect(large).toEqual({ status: 413, body: { error: 'request body too large' } });
  });

  it('takes only an inference key: no key, a wrong key, the operator token are 401', async () => {
    const body = { inputs: [{ name: inputName, shape: [1, 16], datatype: 'FP32', data: tinyRows(1)[0] }] };
    for (const token of [null, 'wrong-key-0123456789abcdef', OPERATOR_TOKEN]) {
      const { status, body: error } = await v2<{ error: string }>(coordinator.url, '/v2/models/global/infer', body, token);
      expect(status).toBe(401);
      expect(error).toEqual({ error: expect.stringMatching(/inference key required/) as unknown });
      expect((await v2(coordinator.url, '/v2/models/global', undefined, token)).status).toBe(401);
    }
  });

  it('logs every request, answered or refused, readable by the operator', async () => {
    // Records are written in batches every FLOCK_INFERENCE_LOG_FLUSH_MS (200 ms).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const page = await coordinator.api<InferenceLogPage>('/api/inference-log?limit=1000');
    expect(page.status).toBe(200);
    expect(page.body.records.find((record) => record.status === 'not_found' && record.modelName === 'resnet')).toBeDefined();
    const statuses = new Set(page.body.records.map((record) => record.status));
    expect(statuses).toEqual(new Set(['ok', 'bad_request', 'not_found']));
    const answered = page.body.records.find((record) => record.status === 'ok' && record.rows === 3)!;
    expect(answered).toMatchObject({ modelName: 'global', modelVersion: 1, inputShape: [3, 16], hasInput: false, label: null });
    expect(answered.inputDigest).toMatch(/^[0-9a-f]{32}$/);
    expect(answered.topClass).toBeGreaterThanOrEqual(0);
    expect(answered.confidence).toBeGreaterThan(0);
    expect((await operatorFetch(coordinator.url, '/api/inference-log', {}, INFERENCE_KEY)).status).toBe(401);
  });

  it('`flock log` lists the records, filtered, with a JSON form checked against the contract', async () => {
    const args = ['--url', coordinator.url, '--token', OPERATOR_TOKEN];
    const table = await runFlock([...args, 'log', '--status', 'ok', '--limit', '2']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/Request.*Version.*Status/);
    expect(table.stdout).toMatch(/v1 *│ *ok/);
    expect(table.stdout).toMatch(/More: --before \d+/);
    const json = await runFlock([...args, '--json', 'log', '--status', 'not_found']);
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout) as InferenceLogPage;
    expect(page.records.length).toBeGreaterThan(0);
    expect(page.records.every((record) => record.status === 'not_found')).toBe(true);
    expect((await runFlock([...args, 'log', '--status', 'fine'])).code).toBe(2);
  });
});
