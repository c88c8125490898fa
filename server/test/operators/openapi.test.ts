import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validate, compileErrors } from '@readme/openapi-parser';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

interface Operation {
  operationId?: string;
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, Record<string, unknown>> };
}

let coordinator: TestCoordinator;
let document: Document;
/** The document as served, for the validator and the generator (which have their own types for it). */
let served: unknown;
const dir = mkdtempSync(join(tmpdir(), 'flock-openapi-'));

beforeAll(async () => {
  coordinator = await startTestCoordinator();
  // Served without a token, as /api/docs is.
  const response = await fetch(`${coordinator.url}/api/docs/openapi.json`);
  expect(response.status).toBe(200);
  served = await response.json();
  document = served as Document;
}, 60_000);
afterAll(async () => {
  await coordinator.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const operations = (): [string, string, Operation][] =>
  Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]): [string, string, Operation] => [`${method.toUpperCase()} ${path}`, method, op]),
  );

/** Every value under `key` anywhere in the document. */
function valuesOf(node: unknown, key: string): unknown[] {
  if (Array.isArray(node)) return node.flatMap((item) => valuesOf(item, key));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) => [...(k === key ? [v] : []), ...valuesOf(v, key)]);
}

/** Type-checks `files` (strict) with the generated types beside them; returns the diagnostics as text. */
function compile(files: Record<string, string>): string[] {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const program = ts.createProgram(
    Object.keys(files).map((name) => join(dir, name)),
    {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: [],
      skipLibCheck: true,
    },
  );
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file ? `${d.file.fileName.slice(dir.length + 1)}: ` : ''}TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
}

describe('the OpenAPI document (/api/docs/openapi.json)', () => {
  it('is a valid OpenAPI 3.0 document (@readme/openapi-parser)', async () => {
    expect(document.openapi).toMatch(/^3\.0\.\d$/);
    const result = await validate(structuredClone(served) as Parameters<typeof validate>[0]);
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');
    // 3.0 spells exclusive bounds as booleans beside minimum/maximum (3.1's numeric form is invalid here).
    for (const value of [...valuesOf(document, 'exclusiveMinimum'), ...valuesOf(document, 'exclusiveMaximum')]) expect(typeof value).toBe('boolean');
  });

  it('names each operation for what it does, and describes opaque bearer tokens (not JWTs)', () => {
    expect(Object.fromEntries(operations().map(([name, , op]) => [name, op.operationId]))).toEqual({
      'GET /metrics': 'getMetrics',
      'GET /api/models': 'listModels',
      'POST /api/models': 'registerModel',
      'GET /api/models/{version}': 'getModel',
      'GET /api/models/{version}/model.json': 'getModelJson',
      'GET /api/models/{version}/weights.bin': 'getModelWeights',
      'POST /api/models/{version}/rollback': 'rollbackModel',
      'GET /api/privacy': 'getPrivacy',
      'POST /api/rounds': 'startRound',
      'GET /api/rounds': 'listRounds',
      'GET /api/rounds/{id}': 'getRound',
      'POST /api/rounds/{id}/cancel': 'cancelRound',
      'GET /api/health': 'getHealth',
      'GET /api/status': 'getStatus',
      'GET /api/clients': 'getClientCounts',
      'GET /v2/health/live': 'v2ServerLive',
      'GET /v2/health/ready': 'v2ServerReady',
      'GET /v2': 'v2ServerMetadata',
      'GET /v2/models/{name}/ready': 'v2ModelReady',
      'GET /v2/models/{name}': 'v2ModelMetadata',
      'GET /v2/models/{name}/versions/{version}': 'v2ModelVersionMetadata',
      'POST /v2/models/{name}/infer': 'v2ModelInfer',
      'POST /v2/models/{name}/versions/{version}/infer': 'v2ModelVersionInfer',
      'GET /api/inference-log': 'listInferenceLog',
      'POST /api/inference-log/{requestId}/feedback': 'postInferenceFeedback',
      'GET /api/serving': 'getServingStatus',
      'POST /api/precompute/{dataset}': 'startPrecompute',
      'GET /api/precompute/jobs': 'listPrecomputeJobs',
      'GET /api/precompute/jobs/{id}': 'getPrecomputeJob',
      'POST /api/precompute/jobs/{id}/resume': 'resumePrecomputeJob',
      'GET /api/predictions/{dataset}/{key}': 'getPrediction',
    });
    expect(document.components.securitySchemes).toEqual({
      bearer: { type: 'http', scheme: 'bearer', description: expect.stringContaining('operator token') as unknown },
    });
  });

  it('gives every response a schema, and every error the JSON error body', () => {
    for (const [name, , op] of operations())
      for (const [status, response] of Object.entries(op.responses)) {
        const media = Object.entries(response.content ?? {});
        expect(media.length, `${name} ${status}`).toBeGreaterThan(0);
        for (const [type, { schema }] of media) {
          expect(schema, `${name} ${status} ${type}`).toBeDefined();
          if (Number(status) >= 400) expect(type, `${name} ${status}`).toBe('application/json');
        }
      }
  });

  it('generates types (openapi-typescript) with which a typed client compiles, and misuse does not', async () => {
    const types = astToString(await openapiTS(structuredClone(served) as Parameters<typeof openapiTS>[0]));
    const client = `
import type { operations } from './api.js';
type Json<O extends keyof operations, S extends keyof operations[O]['responses']> =
  operations[O]['responses'][S] extends { content: { 'application/json': infer T } } ? T : never;

export async function startRound(base: string, token: string, body: operations['startRound']['requestBody'] extends { content: { 'application/json': infer B } } ? B : never): Promise<Json<'startRound', 201>> {
  const response = await fetch(base + '/api/rounds', { method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return (await response.json()) as Json<'startRound', 201>;
}

export async function summary(base: string, token: string): Promise<string> {
  const round = await startRound(base, token, { minClients: 1, strategy: 'fedavg' });
  const counts = (await (await fetch(base + '/api/clients', { headers: { authorization: 'Bearer ' + token } })).json()) as Json<'getClientCounts', 200>;
  const health = (await (await fetch(base + '/api/health')).json()) as Json<'getHealth', 200>;
  const rounds = [] as Json<'listRounds', 200>;
  const details = {} as Json<'getRound', 200>;
  const status: 'selecting' | 'configuring' | 'reporting' | 'committing' | 'committed' | 'failed' | 'aborted' = round.status;
  const transitions: number = details.transitions.length;
  const accepted: number = rounds[0]?.metrics.accepted ?? 0;
  return [status, round.params.plan.learningRate.toFixed(2), counts.connected + counts.eligible + counts.inRound, health.status, transitions, accepted].join(' ');
}
`;
    expect(compile({ 'api.ts': types, 'client.ts': client })).toEqual([]);
    // The responses are typed, not unknown: wrong uses are compile errors.
    const misuse = `
import type { operations } from './api.js';
type Round = operations['getRound']['responses'][200]['content']['application/json'];
type Counts = operations['getClientCounts']['responses'][200]['content']['application/json'];
export function wrong(round: Round, counts: Counts): void {
  const status: number = round.status;
  const connected: string = counts.connected;
  console.log(status, connected, round.noSuchField);
}
`;
    const errors = compile({ 'api.ts': types, 'misuse.ts': misuse });
    expect(errors).toHaveLength(3);
    expect(errors.every((error) => error.startsWith('misuse.ts: '))).toBe(true);
  }, 60_000);
});
