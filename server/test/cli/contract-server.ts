/**
 * CONTRACT STAND-IN, NOT THE COORDINATOR. A real node:http server that answers the operator REST
 * API routes the `flock` CLI uses, with fixed, realistic bodies built from the REST contract's types
 * (src/contract/) and checked with its schemas before they are sent, so the fixtures cannot drift
 * from what the coordinator answers. End-to-end CLI tests against the real coordinator are separate.
 *
 * It checks the bearer token on every route but /api/health (401 with Nest's body otherwise),
 * validates POST /api/rounds with the contract's request schema and fills in its defaults like the
 * coordinator, and records every request so tests can assert what the CLI sent.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { isRoundFinished, type RoundStatus } from '@flock/client-sdk/protocol';
import { emptyRoundMetrics } from '../../src/rounds/round-types.js';
import {
  errorBodySchema,
  healthSchema,
  statusSchema,
  modelVersionDetailSchema,
  modelVersionListSchema,
  modelVersionMetaSchema,
  modelVersionNumberSchema,
  modelVersionSelectorSchema,
  roundDetailsSchema,
  roundIdSchema,
  roundListQuerySchema,
  roundListSchema,
  roundParamsFromRequest,
  roundRecordSchema,
  startRoundRequestSchema,
  validationMessages,
  type ErrorBody,
  type StatusResponse,
  type ModelVersionDetail,
  type ModelVersionMeta,
  type ModelVersionSelector,
  type RoundDetails,
  type RoundRecord,
  type RoundTransition,
} from '../../src/contract/index.js';

export const CONTRACT_TOKEN = 'op-token-7Qx2vLk9PzR4mWb8Nc3s';

export const ACTIVE_ROUND_ID = '3f0c9a52-8d1e-4b7a-9c21-5e6f7a8b9c0d';
export const COMMITTED_ROUND_ID = '1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b';
export const FAILED_ROUND_ID = '9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a';
export const NEW_ROUND_ID = 'c0ffee00-1234-4abc-8def-0123456789ab';

/** The coordinator's default over-selection (FLOCK_OVER_SELECTION), which a start request may leave out. */
const DEFAULT_OVER_SELECTION = 1.3;

export const MODELS: ModelVersionMeta[] = [
  {
    version: 3,
    parentVersion: 2,
    roundId: COMMITTED_ROUND_ID,
    source: 'round',
    createdAt: '2026-05-04T10:12:41.512Z',
    numParameters: 199_210,
    metrics: { testAccuracy: 0.9712, testLoss: 0.0934, trainExamples: 6000 },
    privacy: null,
  },
  {
    version: 2,
    parentVersion: 1,
    roundId: '0a1b2c3d-4e5f-4607-8192-a3b4c5d6e7f8',
    source: 'round',
    createdAt: '2026-05-04T09:58:03.001Z',
    numParameters: 199_210,
    metrics: { testAccuracy: 0.9581, testLoss: 0.1402 },
    privacy: null,
  },
  {
    version: 1,
    parentVersion: null,
    roundId: null,
    source: 'initial',
    createdAt: '2026-05-04T09:40:00.000Z',
    numParameters: 199_210,
    metrics: { testAccuracy: 0.9123, testLoss: 0.3011, note: 'trained on 2,000 MNIST examples' },
    privacy: null,
  },
];

/** The 2NN's tensors, as GET /api/models/{version} lists them. */
const WEIGHT_SPECS: ModelVersionDetail['weightSpecs'] = [
  { name: 'hidden1/kernel', shape: [784, 200], dtype: 'float32' },
  { name: 'hidden1/bias', shape: [200], dtype: 'float32' },
  { name: 'hidden2/kernel', shape: [200, 200], dtype: 'float32' },
  { name: 'hidden2/bias', shape: [200], dtype: 'float32' },
  { name: 'output/kernel', shape: [200, 10], dtype: 'float32' },
  { name: 'output/bias', shape: [10], dtype: 'float32' },
];

/** GET /api/models/{version}: the version's metadata plus what the download needs. */
function modelDetail(meta: ModelVersionMeta): ModelVersionDetail {
  return {
    ...meta,
    weightSpecs: WEIGHT_SPECS,
    topology: { class_name: 'Sequential', config: { name: 'mnist-2nn', layers: [] } },
    hasStrategyState: false,
    modelUrl: `/api/models/${meta.version}/model.json`,
  };
}

/** Round parameters the way the coordinator derives them from a start request (the contract's defaults). */
function paramsFor(request: unknown): RoundRecord['params'] {
  return roundParamsFromRequest(startRoundRequestSchema.parse(request), DEFAULT_OVER_SELECTION);
}

function record(id: string, status: RoundStatus, overrides: Partial<RoundRecord> = {}): RoundRecord {
  return {
    id,
    baseVersion: 3,
    status,
    params: paramsFor({ minClients: 8, targetClients: 10 }),
    metrics: emptyRoundMetrics(),
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
    metrics: {
      ...base.metrics,
      eligibleAtSelection: 17,
      selected: 13,
      reported: 7,
      accepted: 6,
      rejected: { norm_exceeded: 1 },
      totalExamples: 3600,
      bytesReceived: 5_577_880,
      bytesUp: 5_577_880,
      bytesDown: 7_968_400,
    },
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
      bytesUp: 10_359_480,
      bytesDown: 7_968_400,
      decodeMs: 12,
      validationMs: 35,
      aggregationMs: 42,
      durationMs: 754_000,
      localEvaluation: {
        reports: 9,
        numExamples: 5400,
        globalAccuracy: 0.9655,
        globalLoss: 0.1123,
        personalAccuracy: 0.9811,
        personalLoss: 0.0712,
        personalNumExamples: 5400,
        adopted: 6,
        weightCap: 1200,
        spread: {
          globalAccuracy: { q1: 0.95, median: 0.9667, q3: 0.98 },
          globalLoss: { q1: 0.08, median: 0.11, q3: 0.14 },
          personalAccuracy: { q1: 0.97, median: 0.9833, q3: 0.99 },
          personalLoss: { q1: 0.05, median: 0.07, q3: 0.09 },
          personalReports: 9,
          personalBetterShare: 7 / 9,
        },
      },
      updateBound: 2.4,
      nextUpdateBound: 2.31,
      exampleCap: 600,
      nextExampleCap: 600,
      dpClipNorm: null,
      nextDpClipNorm: null,
      expectedUpdates: null,
      clippedUpdates: 4,
      clampedExamples: 0,
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

interface Reply {
  status: number;
  body: unknown;
}

/** An error answer, in Nest's body format (checked against the contract's error schema). */
class HttpError extends Error {
  readonly body: ErrorBody;
  constructor(
    readonly status: number,
    error: string,
    message: string | string[],
  ) {
    super(Array.isArray(message) ? message.join('; ') : message);
    this.body = errorBodySchema.parse({ statusCode: status, message, error });
  }
}

/** A fixture answer, checked against its contract schema first: a fixture that drifted from the contract fails the test (500). */
function reply<S extends z.ZodType>(status: number, schema: S, body: z.input<S>): Reply {
  schema.parse(body);
  return { status, body };
}

/** Validates a request part like the coordinator's parseWithZod: a 400 listing one message per issue. */
function parseRequest<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'Bad Request', validationMessages(result.error));
  return result.data;
}

/** A path parameter like the coordinator's ZodParamPipe: a 400 with the schema's message. */
function parseParam<S extends z.ZodType>(schema: S, value: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'Bad Request', result.error.issues[0]!.message);
  return result.data;
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'Bad Request', 'Unexpected token in JSON');
  }
}

/** The new round as its n-th poll sees it: each poll advances the script one state; the last one sticks. */
function scriptedRound(round: RoundRecord, status: RoundStatus): RoundRecord {
  const terminal = isRoundFinished(status);
  const done = status === 'committed';
  return {
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
    committedVersion: done ? 4 : null,
    error: status === 'failed' ? 'quorum not reached before the deadline: 5 valid updates, 8 needed' : null,
    endedAt: terminal ? '2026-05-04T10:21:35.000Z' : null,
  };
}

/** The routes and their state. */
class StandIn {
  readonly state: ContractState = { newRoundScript: ['selecting', 'configuring', 'reporting', 'committing', 'committed'], activeRound: true, noModel: false };
  private readonly rounds = new Map<string, RoundRecord>([
    [ACTIVE_ROUND_ID, activeRound()],
    [COMMITTED_ROUND_ID, committedRound()],
    [FAILED_ROUND_ID, failedRound()],
  ]);
  /** Order of GET /api/rounds (newest first). */
  private readonly order = [ACTIVE_ROUND_ID, COMMITTED_ROUND_ID, FAILED_ROUND_ID];
  private newRoundPolls = 0;
  private newRoundScript: RoundStatus[] = [];

  route(method: string, path: string, query: URLSearchParams, body: unknown): Reply {
    if (method === 'GET' && path === '/api/health') return reply(200, healthSchema, { status: 'ok' });
    if (method === 'GET' && path === '/api/status') return reply(200, statusSchema, this.status());
    if (method === 'GET' && path === '/api/models') return reply(200, modelVersionListSchema, this.state.noModel ? [] : MODELS);
    if (method === 'GET' && path === '/api/rounds') return this.listRounds(query);
    if (method === 'POST' && path === '/api/rounds') return this.startRound(body);
    let match = /^\/api\/models\/([^/]+)(\/rollback)?$/.exec(path);
    if (match && method === 'GET' && !match[2])
      return reply(200, modelVersionDetailSchema, modelDetail(this.model(parseParam(modelVersionSelectorSchema, match[1]!))));
    if (match && method === 'POST' && match[2]) return this.rollback(parseParam(modelVersionNumberSchema, match[1]!));
    match = /^\/api\/rounds\/([^/]+)(\/cancel)?$/.exec(path);
    if (match && method === 'GET' && !match[2]) return reply(200, roundDetailsSchema, this.roundDetails(this.poll(this.round(match[1]!))));
    if (match && method === 'POST' && match[2]) return this.cancel(this.round(match[1]!));
    throw new HttpError(404, 'Not Found', `Cannot ${method} ${path}`);
  }

  private status(): StatusResponse {
    return {
      status: 'ok',
      modelVersion: this.state.noModel ? null : MODELS[0]!.version,
      connectedClients: 12,
      eligibleClients: 9,
      activeRound: this.state.activeRound && this.rounds.get(ACTIVE_ROUND_ID)?.status === 'reporting' ? ACTIVE_ROUND_ID : null,
      uptimeSeconds: 3725,
    };
  }

  private model(requested: ModelVersionSelector): ModelVersionMeta {
    if (requested === 'current' && this.state.noModel) throw new HttpError(404, 'Not Found', 'no model version registered yet');
    const meta = requested === 'current' ? MODELS[0] : MODELS.find((m) => m.version === requested);
    if (!meta) throw new HttpError(404, 'Not Found', `model version ${requested} not found`);
    return meta;
  }

  private rollback(version: number): Reply {
    const meta = this.model(version);
    const rolledBack: ModelVersionMeta = {
      ...meta,
      version: MODELS[0]!.version + 1,
      parentVersion: meta.version,
      roundId: null,
      source: 'rollback',
      createdAt: '2026-05-04T10:30:00.000Z',
    };
    return reply(201, modelVersionMetaSchema, rolledBack);
  }

  private listRounds(query: URLSearchParams): Reply {
    const { limit, offset } = parseRequest(roundListQuerySchema, Object.fromEntries(query));
    const visible = this.order.filter((id) => this.state.activeRound || id !== ACTIVE_ROUND_ID);
    return reply(
      200,
      roundListSchema,
      visible.slice(offset, offset + limit).map((id) => this.rounds.get(id)!),
    );
  }

  private startRound(body: unknown): Reply {
    const request = parseRequest(startRoundRequestSchema, body ?? {});
    if (this.state.activeRound) throw new HttpError(409, 'Conflict', `round ${ACTIVE_ROUND_ID} is already in flight (reporting)`);
    const created = record(NEW_ROUND_ID, 'selecting', { params: roundParamsFromRequest(request, DEFAULT_OVER_SELECTION) });
    this.rounds.set(NEW_ROUND_ID, created);
    if (!this.order.includes(NEW_ROUND_ID)) this.order.unshift(NEW_ROUND_ID);
    this.newRoundPolls = 0;
    this.newRoundScript = [...this.state.newRoundScript];
    return reply(201, roundRecordSchema, created);
  }

  private round(rawId: string): RoundRecord {
    const id = parseParam(roundIdSchema, decodeURIComponent(rawId));
    const round = this.rounds.get(id);
    if (!round) throw new HttpError(404, 'Not Found', `round ${id} not found`);
    return round;
  }

  /** A GET of a round: the scripted new round moves on. */
  private poll(round: RoundRecord): RoundRecord {
    if (round.id !== NEW_ROUND_ID) return round;
    const next = scriptedRound(round, this.newRoundScript[Math.min(this.newRoundPolls++, this.newRoundScript.length - 1)]!);
    this.rounds.set(round.id, next);
    return next;
  }

  private roundDetails(round: RoundRecord): RoundDetails {
    return {
      ...round,
      transitions: TRANSITIONS[round.id] ?? [{ roundId: round.id, from: null, to: 'selecting', at: round.createdAt, note: null }],
      timeLeftMs: isRoundFinished(round.status) ? null : 88_500,
    };
  }

  private cancel(round: RoundRecord): Reply {
    if (isRoundFinished(round.status)) throw new HttpError(409, 'Conflict', `round ${round.id} already ended (${round.status})`);
    const aborted: RoundRecord = {
      ...round,
      status: 'aborted',
      error: 'cancelled by operator',
      endedAt: '2026-05-04T10:21:00.000Z',
      updatedAt: '2026-05-04T10:21:00.000Z',
    };
    this.rounds.set(round.id, aborted);
    return reply(200, roundRecordSchema, aborted);
  }
}

export async function startContractServer(token = CONTRACT_TOKEN): Promise<ContractServer> {
  const requests: RecordedRequest[] = [];
  const standIn = new StandIn();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://contract.invalid');
      const method = request.method ?? 'GET';
      let answer: Reply;
      try {
        const body = await readBody(request);
        requests.push({ method, path: url.pathname + url.search, authorization: request.headers.authorization, body });
        if (url.pathname !== '/api/health' && request.headers.authorization !== `Bearer ${token}`) {
          throw new HttpError(401, 'Unauthorized', 'operator token required: send Authorization: Bearer <token>');
        }
        answer = standIn.route(method, url.pathname, url.searchParams, body);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        answer = { status: error.status, body: error.body };
      }
      response.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(answer.body));
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
    state: standIn.state,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
