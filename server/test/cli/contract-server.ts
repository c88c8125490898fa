/**
 * CONTRACT STAND-IN, NOT THE COORDINATOR. A real node:http server that answers the operator REST
 * API routes the `flock` CLI uses, with fixed, realistic bodies shaped exactly like the documented
 * contract (HealthResponse, ModelVersionMeta, RoundRecord, RoundDetails, Nest error bodies). It lets
 * the CLI be tested over real HTTP before the coordinator exists; end-to-end CLI tests against the
 * real coordinator are separate.
 *
 * It checks the bearer token on every route but /api/health (401 with Nest's body otherwise),
 * validates POST /api/rounds strictly like the coordinator's schema (unknown keys -> 400), and
 * records every request so tests can assert what the CLI sent.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HealthResponse, ModelVersionMeta, RoundDetails, RoundRecord, RoundStatus, RoundTransition } from '../../src/cli/api-client.js';

export const CONTRACT_TOKEN = 'op-token-7Qx2vLk9PzR4mWb8Nc3s';

export const ACTIVE_ROUND_ID = '3f0c9a52-8d1e-4b7a-9c21-5e6f7a8b9c0d';
export const COMMITTED_ROUND_ID = '1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b';
export const FAILED_ROUND_ID = '9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a';
export const NEW_ROUND_ID = 'c0ffee00-1234-4abc-8def-0123456789ab';

const PLAN = { epochs: 1, batchSize: 10, learningRate: 0.05 };

export const MODELS: ModelVersionMeta[] = [
  {
    version: 3,
    parentVersion: 2,
    roundId: COMMITTED_ROUND_ID,
    source: 'round',
    createdAt: '2026-05-04T10:12:41.512Z',
    numParameters: 199_210,
    metrics: { testAccuracy: 0.9712, testLoss: 0.0934, trainExamples: 6000 },
  },
  {
    version: 2,
    parentVersion: 1,
    roundId: '0a1b2c3d-4e5f-4607-8192-a3b4c5d6e7f8',
    source: 'round',
    createdAt: '2026-05-04T09:58:03.001Z',
    numParameters: 199_210,
    metrics: { testAccuracy: 0.9581, testLoss: 0.1402 },
  },
  {
    version: 1,
    parentVersion: null,
    roundId: null,
    source: 'initial',
    createdAt: '2026-05-04T09:40:00.000Z',
    numParameters: 199_210,
    metrics: { testAccuracy: 0.9123, testLoss: 0.3011, note: 'trained on 2,000 MNIST examples' },
  },
];

function record(id: string, status: RoundStatus, overrides: Partial<RoundRecord> = {}): RoundRecord {
  return {
    id,
    baseVersion: 3,
    status,
    params: {
      minClients: 8,
      targetClients: 10,
      overSelection: 1.3,
      selectionTimeoutMs: 30_000,
      deadlineMs: 120_000,
      plan: PLAN,
      strategy: 'fedavg',
      strategyOptions: {},
      maxUpdateNorm: null,
    },
    metrics: {
      eligibleAtSelection: 0,
      selected: 0,
      reported: 0,
      accepted: 0,
      rejected: {},
      dropped: {},
      totalExamples: 0,
      meanTrainLoss: null,
      updateNorm: null,
      bytesReceived: 0,
      validationMs: 0,
      aggregationMs: 0,
      durationMs: null,
      localEvaluation: null,
    },
    committedVersion: null,
    error: null,
    createdAt: '2026-05-04T10:20:00.000Z',
    updatedAt: '2026-05-04T10:20:00.000Z',
    endedAt: null,
    ...overrides,
  };
}

export function activeRound(): RoundRecord {
  // Live: started 31 s ago.
  const createdAt = new Date(Date.now() - 31_000).toISOString();
  const base = record(ACTIVE_ROUND_ID, 'reporting', { createdAt, updatedAt: createdAt });
  return {
    ...base,
    params: { ...base.params, maxUpdateNorm: 25 },
    metrics: { ...base.metrics, eligibleAtSelection: 17, selected: 13, reported: 7, accepted: 6, rejected: { norm_exceeded: 1 }, totalExamples: 3600, bytesReceived: 5_577_880 },
  };
}

export function committedRound(): RoundRecord {
  const base = record(COMMITTED_ROUND_ID, 'committed');
  return {
    ...base,
    baseVersion: 2,
    committedVersion: 3,
    metrics: {
      eligibleAtSelection: 15,
      selected: 13,
      reported: 13,
      accepted: 10,
      rejected: { version_mismatch: 2, non_finite: 1 },
      dropped: { conditions_changed: 2, deadline: 1 },
      totalExamples: 6000,
      meanTrainLoss: 0.2134,
      updateNorm: 1.8731,
      bytesReceived: 10_359_480,
      validationMs: 95,
      aggregationMs: 42,
      durationMs: 754_000,
      localEvaluation: {
        reports: 9,
        numExamples: 5400,
        globalAccuracy: 0.9655,
        globalLoss: 0.1123,
        personalAccuracy: 0.9811,
        personalLoss: 0.0712,
        adopted: 6,
      },
    },
    createdAt: '2026-05-04T09:59:47.000Z',
    updatedAt: '2026-05-04T10:12:41.512Z',
    endedAt: '2026-05-04T10:12:41.512Z',
  };
}

export function failedRound(): RoundRecord {
  const base = record(FAILED_ROUND_ID, 'failed');
  return {
    ...base,
    baseVersion: 2,
    metrics: { ...base.metrics, eligibleAtSelection: 3, selected: 3, durationMs: 30_004, dropped: { no_data: 1 } },
    error: 'quorum not reached: 3 eligible clients, 8 needed',
    createdAt: '2026-05-04T09:50:00.000Z',
    updatedAt: '2026-05-04T09:50:30.004Z',
    endedAt: '2026-05-04T09:50:30.004Z',
  };
}

const TRANSITIONS: Record<string, RoundTransition[]> = {
  [COMMITTED_ROUND_ID]: [
    { roundId: COMMITTED_ROUND_ID, from: null, to: 'selecting', at: '2026-05-04T09:59:47.000Z', note: null },
    { roundId: COMMITTED_ROUND_ID, from: 'selecting', to: 'configuring', at: '2026-05-04T09:59:52.310Z', note: '13 of 15 eligible selected' },
    { roundId: COMMITTED_ROUND_ID, from: 'configuring', to: 'reporting', at: '2026-05-04T09:59:52.402Z', note: null },
    { roundId: COMMITTED_ROUND_ID, from: 'reporting', to: 'committing', at: '2026-05-04T10:12:41.400Z', note: 'all selected clients reported' },
    { roundId: COMMITTED_ROUND_ID, from: 'committing', to: 'committed', at: '2026-05-04T10:12:41.512Z', note: 'version 3' },
  ],
};

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

/** Knobs tests turn to steer the stand-in. */
export interface ContractState {
  /** What POST /api/rounds creates rounds into: the statuses successive GETs of the new round walk through. */
  newRoundScript: RoundStatus[];
  /**
   * The fixture round ACTIVE_ROUND_ID is in flight (default): health names it, GET /api/rounds lists
   * it first and POST /api/rounds answers 409. Set false to start rounds.
   */
  activeRound: boolean;
  /** No model registered yet: /api/models/current answers 404. */
  noModel: boolean;
}

export interface ContractServer {
  url: string;
  token: string;
  requests: RecordedRequest[];
  state: ContractState;
  close(): Promise<void>;
}

const START_ROUND_KEYS = new Set([
  'minClients',
  'targetClients',
  'overSelection',
  'selectionTimeoutSeconds',
  'deadlineSeconds',
  'epochs',
  'batchSize',
  'learningRate',
  'proximalMu',
  'strategy',
  'strategyOptions',
  'maxUpdateNorm',
]);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: { statusCode: number; message: string | string[]; error: string },
  ) {
    super(Array.isArray(body.message) ? body.message.join('; ') : body.message);
  }
}

const nestError = (statusCode: number, error: string, message: string | string[]): HttpError => new HttpError(statusCode, { statusCode, message, error });

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw nestError(400, 'Bad Request', 'Unexpected token in JSON');
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function startContractServer(token = CONTRACT_TOKEN): Promise<ContractServer> {
  const requests: RecordedRequest[] = [];
  const state: ContractState = { newRoundScript: ['selecting', 'configuring', 'reporting', 'committing', 'committed'], activeRound: true, noModel: false };
  const rounds = new Map<string, RoundRecord>([
    [ACTIVE_ROUND_ID, activeRound()],
    [COMMITTED_ROUND_ID, committedRound()],
    [FAILED_ROUND_ID, failedRound()],
  ]);
  /** Order of GET /api/rounds (newest first). */
  const order = [ACTIVE_ROUND_ID, COMMITTED_ROUND_ID, FAILED_ROUND_ID];
  let newRoundPolls = 0;
  let newRoundScript: RoundStatus[] = [];

  function roundDetails(round: RoundRecord): RoundDetails {
    const terminal = round.status === 'committed' || round.status === 'failed' || round.status === 'aborted';
    return {
      ...round,
      transitions: TRANSITIONS[round.id] ?? [{ roundId: round.id, from: null, to: 'selecting', at: round.createdAt, note: null }],
      timeLeftMs: terminal ? null : 88_500,
    };
  }

  function route(method: string, path: string, query: URLSearchParams, body: unknown): { status: number; body: unknown } {
    if (method === 'GET' && path === '/api/health') {
      const health: HealthResponse = {
        status: 'ok',
        modelVersion: state.noModel ? null : MODELS[0]!.version,
        connectedClients: 12,
        eligibleClients: 9,
        activeRound: state.activeRound && rounds.get(ACTIVE_ROUND_ID)?.status === 'reporting' ? ACTIVE_ROUND_ID : null,
        uptimeSeconds: 3725,
      };
      return { status: 200, body: health };
    }
    if (method === 'GET' && path === '/api/models') return { status: 200, body: state.noModel ? [] : MODELS };
    if (method === 'GET' && path === '/api/models/current') {
      if (state.noModel) throw nestError(404, 'Not Found', 'no model version registered yet');
      return { status: 200, body: MODELS[0] };
    }
    let match = /^\/api\/models\/([^/]+)(\/rollback)?$/.exec(path);
    if (match) {
      const version = Number(match[1]);
      if (!Number.isInteger(version)) throw nestError(400, 'Bad Request', 'Validation failed (numeric string is expected)');
      const meta = MODELS.find((m) => m.version === version);
      if (!meta) throw nestError(404, 'Not Found', `model version ${version} not found`);
      if (method === 'GET' && !match[2]) return { status: 200, body: meta };
      if (method === 'POST' && match[2]) {
        const rolledBack: ModelVersionMeta = {
          ...meta,
          version: MODELS[0]!.version + 1,
          parentVersion: meta.version,
          roundId: null,
          source: 'rollback',
          createdAt: '2026-05-04T10:30:00.000Z',
        };
        return { status: 201, body: rolledBack };
      }
    }
    if (path === '/api/rounds' && method === 'GET') {
      const limit = Number(query.get('limit') ?? 50);
      const offset = Number(query.get('offset') ?? 0);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw nestError(400, 'Bad Request', ['limit: Too big: expected number to be <=1000']);
      const visible = order.filter((id) => state.activeRound || id !== ACTIVE_ROUND_ID);
      return { status: 200, body: visible.slice(offset, offset + limit).map((id) => rounds.get(id)) };
    }
    if (path === '/api/rounds' && method === 'POST') {
      const params = (body ?? {}) as Record<string, unknown>;
      if (typeof params !== 'object' || Array.isArray(params)) throw nestError(400, 'Bad Request', ['expected an object']);
      const unknown = Object.keys(params).filter((key) => !START_ROUND_KEYS.has(key));
      if (unknown.length > 0) throw nestError(400, 'Bad Request', [`Unrecognized key(s) in object: ${unknown.map((k) => `"${k}"`).join(', ')}`]);
      const minClients = (params.minClients as number | undefined) ?? 2;
      const targetClients = params.targetClients as number | undefined;
      if (targetClients !== undefined && targetClients < minClients) {
        throw nestError(400, 'Bad Request', ['targetClients: targetClients must be at least minClients']);
      }
      if (state.activeRound) throw nestError(409, 'Conflict', `round ${ACTIVE_ROUND_ID} is already in flight (reporting)`);
      const created = record(NEW_ROUND_ID, 'selecting', {
        params: {
          minClients,
          targetClients: targetClients ?? Math.max(minClients, 10),
          overSelection: (params.overSelection as number | undefined) ?? 1.3,
          selectionTimeoutMs: ((params.selectionTimeoutSeconds as number | undefined) ?? 30) * 1000,
          deadlineMs: ((params.deadlineSeconds as number | undefined) ?? 120) * 1000,
          plan: {
            epochs: (params.epochs as number | undefined) ?? 1,
            batchSize: (params.batchSize as number | undefined) ?? 10,
            learningRate: (params.learningRate as number | undefined) ?? 0.05,
            ...(params.proximalMu !== undefined ? { proximalMu: params.proximalMu as number } : {}),
          },
          strategy: (params.strategy as string | undefined) ?? 'fedavg',
          strategyOptions: (params.strategyOptions as Record<string, unknown> | undefined) ?? {},
          maxUpdateNorm: (params.maxUpdateNorm as number | undefined) ?? null,
        },
      });
      rounds.set(NEW_ROUND_ID, created);
      if (!order.includes(NEW_ROUND_ID)) order.unshift(NEW_ROUND_ID);
      newRoundPolls = 0;
      newRoundScript = [...state.newRoundScript];
      return { status: 201, body: created };
    }
    match = /^\/api\/rounds\/([^/]+)(\/cancel)?$/.exec(path);
    if (match) {
      const id = decodeURIComponent(match[1]!);
      if (!UUID.test(id)) throw nestError(400, 'Bad Request', 'round id must be a UUID');
      let round = rounds.get(id);
      if (!round) throw nestError(404, 'Not Found', `round ${id} not found`);
      if (method === 'GET' && !match[2]) {
        if (id === NEW_ROUND_ID) {
          // Each poll advances the scripted round one state; the last one sticks.
          const status = newRoundScript[Math.min(newRoundPolls++, newRoundScript.length - 1)]!;
          const terminal = status === 'committed' || status === 'failed' || status === 'aborted';
          const done = status === 'committed';
          round = {
            ...round,
            status,
            metrics: {
              ...round.metrics,
              eligibleAtSelection: 14,
              selected: 13,
              reported: done ? 12 : 5,
              accepted: done ? 11 : 5,
              rejected: done ? { norm_exceeded: 1 } : {},
              dropped: status === 'failed' ? { conditions_changed: 4, deadline: 4 } : {},
              totalExamples: done ? 6600 : 3000,
              durationMs: terminal ? 95_000 : null,
            },
            committedVersion: status === 'committed' ? 4 : null,
            error: status === 'failed' ? 'quorum not reached before the deadline: 5 valid updates, 8 needed' : null,
            endedAt: terminal ? '2026-05-04T10:21:35.000Z' : null,
          };
          rounds.set(id, round);
        }
        return { status: 200, body: roundDetails(round) };
      }
      if (method === 'POST' && match[2]) {
        if (round.status === 'committed' || round.status === 'failed' || round.status === 'aborted') {
          throw nestError(409, 'Conflict', `round ${id} already ended (${round.status})`);
        }
        const aborted: RoundRecord = { ...round, status: 'aborted', error: 'cancelled by operator', endedAt: '2026-05-04T10:21:00.000Z', updatedAt: '2026-05-04T10:21:00.000Z' };
        rounds.set(id, aborted);
        return { status: 200, body: aborted };
      }
    }
    throw nestError(404, 'Not Found', `Cannot ${method} ${path}`);
  }

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://contract.invalid');
      const method = request.method ?? 'GET';
      let status: number;
      let payload: unknown;
      try {
        const body = await readBody(request);
        requests.push({ method, path: url.pathname + url.search, authorization: request.headers.authorization, body });
        if (url.pathname !== '/api/health' && request.headers.authorization !== `Bearer ${token}`) {
          throw nestError(401, 'Unauthorized', 'operator token required: send Authorization: Bearer <token>');
        }
        ({ status, body: payload } = route(method, url.pathname, url.searchParams, body));
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        status = error.status;
        payload = error.body;
      }
      response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(payload));
    })().catch((error: unknown) => {
      response.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify({ statusCode: 500, message: String(error), error: 'Internal Server Error' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    state,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
