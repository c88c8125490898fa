/**
 * Property-based fuzzing of everything a network peer can send: the device handshake, every device
 * event (and raw socket.io packets), the operators namespace, and the REST API with the operator
 * token. After each property the coordinator must still answer, an honest device must still be
 * served, and the global model must be exactly what it was. Seeded and bounded (fixed run counts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { io, type Socket } from 'socket.io-client';
import { ClientEvent, PROTOCOL_VERSION } from '@flock/client-sdk/protocol';
import type { EventLimits } from '../../src/boundary/event-rate-limit.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, operatorFetch, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { metrics, metricValue } from '../support/metrics.js';
import { newDeviceKey, ProtocolClient } from '../support/protocol-client.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';

const SEED = 20_261_203;
/** Generous limits: the fuzzer's events must reach the handlers, not only the rate limiter. */
const GENEROUS = { perSecond: 10_000, burst: 10_000 };
const FUZZ_LIMITS: EventLimits = {
  rules: { proof: GENEROUS, conditions: GENEROUS, fetch: GENEROUS, update: GENEROUS, evaluation: GENEROUS, abandon: GENEROUS, secagg: GENEROUS },
  abuse: GENEROUS,
};

// ------------------------------------------------------------------ hostile values

/** Keys that trip naive code: prototype pollution, and the protocol's own field names. */
const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'then'),
  fc.constantFrom('token', 'publicKey', 'protocolVersion', 'signature', 'roundId', 'modelVersion', 'numExamples', 'trainLoss', 'delta', 'shapes', 'data'),
  fc.constantFrom('eligible', 'reasons', 'version', 'reason', 'globalLoss', 'globalAccuracy', 'personalLoss', 'personalAccuracy', 'kty', 'crv', 'x', 'y'),
  fc.string({ maxLength: 12 }),
);

const hostileLeaf = fc.oneof(
  fc.constantFrom<unknown>(NaN, Infinity, -Infinity, -0, 0, 1, -1, 1e308, -1e308, 3.4e38, 1e9, 2 ** 53 + 1, null, true, false, '', '\u0000', '\ud800', 'NaN'),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.uint8Array({ maxLength: 128 }).map((bytes) => Buffer.from(bytes)),
  fc.integer({ min: 10_000, max: 400_000 }).map((length) => 'x'.repeat(length)),
);

const { value: hostileValue } = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, hostileLeaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(hostileKey, tie('value'), { maxKeys: 5 }),
}));

/**
 * Nesting far deeper than any message. Generated as a description and built when sent, so that
 * fast-check can print a counterexample (its printer recurses).
 */
class DeepNest {
  constructor(
    readonly depth: number,
    readonly asArray: boolean,
  ) {}
  build(): unknown {
    let value: unknown = 1;
    for (let i = 0; i < this.depth; i++) value = this.asArray ? [value] : { a: value };
    return value;
  }
  [fc.toStringMethod](): string {
    return `DeepNest(${this.depth}, ${this.asArray ? 'arrays' : 'objects'})`;
  }
}
const deepValue = fc.tuple(fc.integer({ min: 50, max: 3_000 }), fc.boolean()).map(([depth, asArray]) => new DeepNest(depth, asArray));
/** What goes on the wire: deep values built, the placeholder round id replaced by the real one. */
function materialize(value: unknown, roundId: string): unknown {
  if (value instanceof DeepNest) return value.build();
  if (value !== null && typeof value === 'object' && (value as { roundId?: unknown }).roundId === 'ROUND') return { ...value, roundId };
  return value;
}

// ------------------------------------------------------------------ the coordinator under fuzz

let coordinator: TestCoordinator;
let honest: ProtocolClient;
let fuzzer: ProtocolClient;
let roundId: string;
let baseline: { version: number; weights: Buffer };

async function currentModel(): Promise<{ version: number; weights: Buffer }> {
  const meta = await coordinator.api<{ version: number }>('/api/models/current');
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${meta.body.version}/weights.bin`, {
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` },
  });
  return { version: meta.body.version, weights: Buffer.from(await response.arrayBuffer()) };
}

/** The coordinator answers, an honest device is served, the model is byte for byte what it was. */
async function assertIntact(): Promise<void> {
  expect(await operatorFetch(coordinator.url, '/api/health', {}, '')).toEqual({ status: 200, body: { status: 'ok' } });
  expect(honest.socket.connected).toBe(true);
  expect((await honest.fetchModel()).version).toBe(baseline.version);
  const now = await currentModel();
  expect(now.version).toBe(baseline.version);
  expect(now.weights.equals(baseline.weights)).toBe(true);
}

/** The fuzzing device, reconnected when the coordinator closed it (a packet it could not parse, say). */
async function fuzzingDevice(): Promise<ProtocolClient> {
  if (!fuzzer.socket.connected) fuzzer = await ProtocolClient.connect(coordinator.url);
  return fuzzer;
}

beforeAll(async () => {
  coordinator = await startTestCoordinator({ eventLimits: FUZZ_LIMITS });
  honest = await ProtocolClient.connect(coordinator.url);
  fuzzer = await ProtocolClient.connect(coordinator.url);
  await waitFor(
    () => coordinator.api<{ eligible: number }>('/api/clients'),
    (counts) => counts.body.eligible === 2,
    10_000,
    'two eligible devices',
  );
  // A round in flight with the fuzzer selected, so that uploads and abandons reach the round engine.
  const started = await coordinator.api<{ id: string }>('/api/rounds', {
    method: 'POST',
    body: JSON.stringify({ minClients: 2, targetClients: 2, overSelection: 1, selectionTimeoutSeconds: 60, deadlineSeconds: 3600 }),
  });
  roundId = started.body.id;
  await fuzzer.configurations.next();
  baseline = await currentModel();
}, 60_000);

afterAll(async () => {
  honest?.disconnect();
  fuzzer?.disconnect();
  await coordinator?.dispose();
});

/** Waits briefly for the coordinator to have dealt with what was sent (a round trip on a fresh request). */
async function settle(): Promise<void> {
  await operatorFetch(coordinator.url, '/api/health', {}, '');
}

describe('fuzz: the device handshake', () => {
  it('refuses any hostile auth without harm', async () => {
    const auth = fc.oneof(
      hostileValue,
      deepValue,
      fc.record(
        {
          token: fc.oneof(hostileValue, fc.constant(CLIENT_TOKEN)),
          publicKey: fc.oneof(
            hostileValue,
            fc.record({ kty: fc.oneof(fc.constant('EC'), hostileValue), crv: fc.oneof(fc.constant('P-256'), hostileValue), x: hostileValue, y: hostileValue }),
          ),
          protocolVersion: fc.oneof(fc.constant(PROTOCOL_VERSION), hostileValue),
        },
        { requiredKeys: [] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(auth, async (value) => {
        // A function lets any JSON value (not only an object) reach the handshake packet.
        const socket = io(coordinator.url, {
          auth: (send) => send(materialize(value, '') as object),
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        const outcome = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('no answer'), 2_000);
          socket.once('connect', () => resolve('connected'));
          socket.once('connect_error', (error: Error & { data?: { code?: string } }) => resolve(error.data?.code ?? error.message));
          socket.once('disconnect', () => resolve('closed'));
          socket.io.once('close', () => resolve('closed'));
          socket.on('connect_error', () => clearTimeout(timer));
        });
        socket.close();
        // A made-up key never gets a session: a handshake is accepted only with the token, the version and a real point.
        expect(outcome).not.toBe('no answer');
      }),
      { seed: SEED, numRuns: 60 },
    );
    await assertIntact();
  });
});

describe('fuzz: device events', () => {
  // The protocol's events twice as often as made-up names.
  const SECURE_EVENTS: string[] = [ClientEvent.secAggAdvertise, ClientEvent.secAggShares, ClientEvent.secAggMasked, ClientEvent.secAggReveal];
  const PLAIN_EVENTS = Object.values(ClientEvent).filter((event) => !SECURE_EVENTS.includes(event));
  const eventName = fc.oneof(
    fc.constantFrom(...PLAIN_EVENTS),
    fc.constantFrom(...PLAIN_EVENTS),
    fc.constantFrom(...SECURE_EVENTS),
    fc.string({ maxLength: 20 }),
    fc.constantFrom('__proto__', 'constructor', 'connect', 'disconnect', 'error', 'newListener'),
  );
  /** Messages with the protocol's field names (the real round id among them) and hostile values, to get past the first check. */
  const lookalike = fc.record(
    {
      roundId: fc.oneof(fc.constant('ROUND'), hostileValue),
      modelVersion: fc.oneof(fc.constant(1), hostileValue),
      version: fc.oneof(fc.constant(1), hostileValue),
      numExamples: fc.oneof(fc.constant(1e9), hostileValue),
      trainLoss: hostileValue,
      delta: fc.oneof(hostileValue, fc.record({ shapes: fc.oneof(hostileValue, fc.constant([[784, 200], [200]])), data: hostileValue })),
      eligible: fc.oneof(fc.boolean(), hostileValue),
      reasons: hostileValue,
      reason: fc.oneof(fc.constantFrom('conditions_changed', 'stopped'), hostileValue),
      signature: hostileValue,
      globalLoss: hostileValue,
      globalAccuracy: hostileValue,
    },
    { requiredKeys: [] },
  );
  const payload = fc.oneof(hostileValue, deepValue, lookalike);
  const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
  const ACKNOWLEDGED = new Set<string>([
    ClientEvent.fetchModel,
    ClientEvent.update,
    ClientEvent.evaluation,
    ClientEvent.proof,
    ClientEvent.secAggAdvertise,
    ClientEvent.secAggShares,
    ClientEvent.secAggMasked,
    ClientEvent.secAggReveal,
  ]);

  it('drops or refuses any hostile event payload without harm', async () => {
    await fc.assert(
      fc.asyncProperty(eventName, fc.array(payload, { minLength: 1, maxLength: 3 }), fc.boolean(), async (event, args, withAck) => {
        // Untyped: the fuzzer sends what the protocol's event map forbids.
        const socket: Socket = (await fuzzingDevice()).socket;
        const values = args.map((arg) => materialize(arg, roundId));
        // Events the coordinator acknowledges are asked for their answer; it must come, whatever was sent.
        if (RESERVED.has(event)) {
          // socket.io-client refuses to emit these names; an attacker writes the packet by hand.
          socket.io.engine.write(`2${JSON.stringify([event, ...values])}`);
        } else if (withAck && ACKNOWLEDGED.has(event)) {
          const answer: unknown = await socket
            .timeout(5_000)
            .emitWithAck(event, ...values)
            .catch((error: unknown) => error);
          // An answer, or a socket the coordinator closed (it could not parse an earlier packet); never silence on an open socket.
          // (A RangeError is socket.io-client failing to encode deep nesting with binary: nothing was sent. Raw packets cover that.)
          if (answer instanceof RangeError) return;
          if (answer instanceof Error) expect(socket.connected, answer.message).toBe(false);
          else expect(answer).toBeTypeOf('object');
        } else {
          try {
            socket.emit(event, ...values);
          } catch (error) {
            if (!(error instanceof RangeError)) throw error;
          }
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
    await settle();
    await assertIntact();
    // The payloads got past the rate limiter to the handlers' own checks.
    const text = await metrics(coordinator);
    expect(metricValue(text, 'flock_uploads_total', { result: 'rejected', reason: 'malformed' })).toBeGreaterThan(0);
    expect(metricValue(text, 'flock_evaluation_reports_total', { result: 'refused', reason: 'malformed' })).toBeGreaterThan(0);
  });

  it('survives raw socket.io packets that no client library would write', async () => {
    const deepText = fc.integer({ min: 100, max: 100_000 }).map((depth) => `2["${ClientEvent.conditions}",${'['.repeat(depth)}${']'.repeat(depth)}]`);
    const packet = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      deepText,
      fc.constantFrom(
        '2',
        '2[]',
        '2{}',
        '2["__proto__",{}]',
        '21["model:fetch"]',
        '2["round:update"',
        '51-["round:update",{"_placeholder":true,"num":9}]',
        '0{}',
        '1',
        '3',
        '4"x"',
        '6',
      ),
      fc.json().map((json) => `2[${JSON.stringify(ClientEvent.update)},${json}]`),
    );
    // A binary event whose placeholder sits deep down: the parser rebuilds it recursively.
    const deepBinary = fc.integer({ min: 100, max: 100_000 }).map((depth) => ({
      text: `51-["${ClientEvent.proof}",${'['.repeat(depth)}{"_placeholder":true,"num":0}${']'.repeat(depth)}]`,
      attachment: Buffer.from([1, 2, 3]),
    }));
    const raw = fc.oneof(
      packet.map((text) => ({ text, attachment: null })),
      deepBinary,
    );
    await fc.assert(
      fc.asyncProperty(raw, async ({ text, attachment }) => {
        const device = await fuzzingDevice();
        device.socket.io.engine.write(text);
        if (attachment) device.socket.io.engine.write(attachment);
        await settle();
      }),
      { seed: SEED, numRuns: 80 },
    );
    await assertIntact();
  });
});

describe('fuzz: the operators namespace', () => {
  it('drops hostile events and refuses hostile handshakes without harm', async () => {
    const operator = io(`${coordinator.url}/operators`, { auth: { token: OPERATOR_TOKEN }, transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve) => operator.once('connect', resolve));
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 20 }), fc.oneof(hostileValue, deepValue), hostileValue, async (event, payload, auth) => {
        if (operator.connected) operator.emit(event, materialize(payload, ''));
        const socket = io(`${coordinator.url}/operators`, {
          auth: (send) => send(auth as object),
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        const outcome = await new Promise<string>((resolve) => {
          socket.once('connect', () => resolve('connected'));
          socket.once('connect_error', () => resolve('refused'));
          socket.io.once('close', () => resolve('closed'));
        });
        socket.close();
        expect(outcome).not.toBe('connected');
      }),
      { seed: SEED, numRuns: 60 },
    );
    operator.close();
    await assertIntact();
  });
});

/** A URL path segment; a lone surrogate, which encodeURIComponent refuses, becomes its bytes' escapes. */
function pathSegment(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return '%ED%A0%80';
  }
}

describe('fuzz: the REST API with the operator token', () => {
  const segment = fc.oneof(
    hostileLeaf.map((value) => pathSegment(String(value))),
    fc.constantFrom('..', '%', '%00', 'current', '-1', '1e308', '0x1', '%201', '1.5', '999999999999999999999'),
  );
  const route = fc.oneof(
    fc.constant({ method: 'POST', path: '/api/rounds' }),
    segment.map((id) => ({ method: 'GET', path: `/api/rounds/${id}` })),
    segment.map((id) => ({ method: 'POST', path: `/api/rounds/${id}/cancel` })),
    fc.dictionary(hostileKey, segment, { maxKeys: 4 }).map((query) => ({ method: 'GET', path: `/api/rounds?${new URLSearchParams(query).toString()}` })),
    segment.map((version) => ({ method: 'GET', path: `/api/models/${version}` })),
    segment.map((version) => ({ method: 'GET', path: `/api/models/${version}/model.json` })),
    // Only versions that cannot name a real one: a rollback to a real version is an operator's legitimate change of the model.
    segment.map((version) => ({ method: 'POST', path: `/api/models/v${version}/rollback` })),
    fc.constant({ method: 'POST', path: '/api/models' }),
    segment.map((file) => ({ method: 'GET', path: `/dashboard/assets/${file}` })),
    // Precompute: lookups (their fast path in front of express, then express) and uploads.
    fc.tuple(segment, segment, fc.option(segment)).map(([dataset, key, version]) => ({
      method: 'GET',
      path: `/api/predictions/${dataset}/${key}${version === null ? '' : `?version=${version}`}`,
    })),
    fc.tuple(segment, segment).map(([dataset, format]) => ({ method: 'POST', path: `/api/precompute/${dataset}?format=${format}` })),
    fc.constantFrom(
      { method: 'GET', path: '/api/status' },
      { method: 'GET', path: '/api/clients' },
      { method: 'PUT', path: '/api/rounds' },
      { method: 'DELETE', path: '/api/models/1' },
    ),
  );
  const body = fc.oneof(
    hostileValue.map((value) => JSON.stringify(value) ?? 'undefined'),
    fc.string({ maxLength: 300 }),
    fc.integer({ min: 100, max: 40_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
    fc.integer({ min: 100, max: 10_000 }).map((depth) => `{"strategyOptions":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`),
    fc.constantFrom(
      '{"__proto__":{"minClients":1}}',
      '{"constructor":{"prototype":{"x":1}}}',
      '{"minClients":1e999}',
      '{"minClients":-0}',
      'x'.repeat(70_000),
      '\u0000',
    ),
    fc.uint8Array({ maxLength: 2_000 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
  );
  const contentType = fc.constantFrom(
    'application/json',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/json; charset=utf-16',
  );

  it('answers every hostile request with a client error, never a server error, and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(route, body, contentType, async ({ method, path }, text, type) => {
        const withBody = method === 'POST' || method === 'PUT';
        const answer = await operatorFetch(coordinator.url, path, withBody ? { method, body: text, headers: { 'Content-Type': type } } : { method });
        expect(answer.status, `${method} ${path.slice(0, 100)}`).toBeLessThan(500);
      }),
      { seed: SEED, numRuns: 150 },
    );
    await assertIntact();
  });
});

it('a fresh device still gets a session after all of the above', async () => {
  const device = await ProtocolClient.connect(coordinator.url, { key: newDeviceKey() });
  expect(device.welcome.currentModelVersion).toBe(baseline.version);
  device.disconnect();
});
