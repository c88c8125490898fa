/**
 * Enrolment: the app's backend signs device tokens (JWTs) bound to device keys; the coordinator
 * verifies them with the key the operator configured, refuses the shared client token, keeps the
 * app user only as a keyed hash, and selects at most one device per user in a round. The signing
 * key is generated here (jose), the coordinator is real.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArrayDataSource } from '@flock/client-sdk';
import { parseKeySet } from '../../src/clients/device-tokens.js';
import { loadConfig } from '../../src/config/config.js';
import type { RoundDetails, RoundRecord } from '../../src/contract/index.js';
import { CLIENT_TOKEN, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { watchedClient } from '../support/watched-client.js';
import { makeDelta, newDeviceKey, ProtocolClient, type DeviceKey } from '../support/protocol-client.js';

const ISSUER = 'https://app.example.com';
const AUDIENCE = 'flock-coordinator';
/** An app user id that must never reach the coordinator's storage or answers in clear. */
const ALICE = 'alice-user-7f3a9c';
const BOB = 'bob-user-51d2e0';

let coordinator: TestCoordinator;
let appKey: CryptoKey;
const devices: ProtocolClient[] = [];

/** What the app's backend does: a short-lived token for this user, bound to this device key. */
function deviceToken(
  sub: string | undefined,
  jkt: unknown,
  overrides: { issuer?: string; audience?: string; expiresAt?: number; key?: CryptoKey; claims?: JWTPayload } = {},
): Promise<string> {
  const jwt = new SignJWT({ ...(jkt === undefined ? {} : { cnf: { jkt } }), ...overrides.claims })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(overrides.issuer ?? ISSUER)
    .setAudience(overrides.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(overrides.expiresAt ?? Math.floor(Date.now() / 1000) + 600);
  if (sub !== undefined) jwt.setSubject(sub);
  return jwt.sign(overrides.key ?? appKey);
}

async function enrolled(user: string, key: DeviceKey = newDeviceKey()): Promise<ProtocolClient> {
  const device = await ProtocolClient.connect(coordinator.url, { key, token: await deviceToken(user, key.clientId) });
  devices.push(device);
  return device;
}

async function refusal(token: string, key: DeviceKey = newDeviceKey()): Promise<string> {
  const error = await ProtocolClient.connect(coordinator.url, { key, token }).then(
    () => {
      throw new Error('accepted');
    },
    (refused: Error) => refused,
  );
  return error.message;
}

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  appKey = privateKey;
  coordinator = await startTestCoordinator({
    enrolment: {
      keys: { keyText: JSON.stringify(await exportJWK(publicKey)) },
      issuer: ISSUER,
      audience: AUDIENCE,
      userKeySecret: 'test-user-key-secret-0123456789',
    },
  });
});
afterEach(async () => {
  devices.splice(0).forEach((device) => device.disconnect());
  await coordinator.devicesLeft();
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('enrolment', () => {
  it('welcomes a device whose token is signed by the app and bound to its key', async () => {
    const key = newDeviceKey();
    const device = await enrolled(ALICE, key);
    expect(device.welcome.clientId).toBe(key.clientId);
  });

  it('refuses each bad credential with its reason, and the shared client token', async () => {
    const key = newDeviceKey();
    const { privateKey: otherAppKey } = await generateKeyPair('ES256');
    const now = Math.floor(Date.now() / 1000);
    expect(await refusal(await deviceToken(ALICE, newDeviceKey().clientId), key)).toBe('token_key_mismatch'); // a token for another key
    expect(await refusal(await deviceToken(ALICE, undefined), key)).toBe('token_key_mismatch'); // bound to no key
    expect(await refusal(await deviceToken(ALICE, key.clientId, { expiresAt: now - 3600 }), key)).toBe('token_expired');
    expect(await refusal(await deviceToken(ALICE, key.clientId, { issuer: 'https://evil.example.com' }), key)).toBe('token_claims_invalid');
    expect(await refusal(await deviceToken(ALICE, key.clientId, { audience: 'another-service' }), key)).toBe('token_claims_invalid');
    expect(await refusal(await deviceToken(undefined, key.clientId), key)).toBe('token_claims_invalid'); // no app user
    expect(await refusal(await deviceToken(ALICE, key.clientId, { key: otherAppKey }), key)).toBe('unauthorized'); // not the app's signature
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: ALICE, iss: ISSUER, aud: AUDIENCE, exp: now + 600, cnf: { jkt: key.clientId } })).toString('base64url')}.`;
    expect(await refusal(unsigned, key)).toBe('unauthorized');
    expect(await refusal('not.a.jwt', key)).toBe('unauthorized');
    expect(await refusal(CLIENT_TOKEN, key)).toBe('enrolment_required');
    // The shared token no longer downloads models over REST either.
    const download = await fetch(`${coordinator.url}/api/models/current/model.json`, { headers: { Authorization: `Bearer ${CLIENT_TOKEN}` } });
    expect(download.status).toBe(401);
    const metrics = await coordinator.api<string>('/metrics');
    for (const [reason, count] of [
      ['token_key_mismatch', 2],
      ['token_expired', 1],
      ['token_claims_invalid', 3],
      ['enrolment_required', 1],
    ] as const) {
      expect(metrics.body).toContain(`flock_connections_refused_total{reason="${reason}"} ${count}`);
    }
    expect((await coordinator.api<{ status: string }>('/api/health')).body.status).toBe('ok');
  });

  it('never selects two devices of one app user in a round, and keeps the user only as a keyed hash', async () => {
    const alice = await Promise.all([enrolled(ALICE), enrolled(ALICE), enrolled(ALICE)]);
    const bob = await enrolled(BOB);
    await waitFor(
      () => coordinator.api<{ eligible: number }>('/api/clients'),
      (r) => r.body.eligible === 4,
      5_000,
      'four eligible devices',
    );
    for (let round = 0; round < 3; round++) {
      const { body: record } = await coordinator.api<RoundRecord>('/api/rounds', {
        method: 'POST',
        body: JSON.stringify({ minClients: 2, targetClients: 4, overSelection: 1, deadlineSeconds: 30, epochs: 1, batchSize: 10, learningRate: 0.1 }),
      });
      const ended = waitFor(
        () => coordinator.api<RoundDetails>(`/api/rounds/${record.id}`),
        (r) => r.body.status === 'committed',
        20_000,
        'the round to commit',
      );
      const configured = (device: ProtocolClient) => device.configurations.items.some((c) => c.roundId === record.id);
      await waitFor(
        () => [...alice, bob].filter(configured).length,
        (count) => count === 2,
        10_000,
        'two participants configured',
      );
      expect(alice.filter(configured)).toHaveLength(1);
      expect(configured(bob)).toBe(true);
      for (const device of [...alice, bob].filter(configured)) {
        const configuration = device.configurations.items.find((c) => c.roundId === record.id)!;
        const model = await device.fetchModel(configuration.modelVersion);
        expect(await device.upload(configuration, model, makeDelta(model, round), 10)).toEqual({ accepted: true });
      }
      expect((await ended).body.metrics).toMatchObject({ selected: 2, eligibleAtSelection: 2, accepted: 2 });
    }
    // Nothing the coordinator stored (in its data directory and below it) or answers holds the app user ids.
    for (const entry of readdirSync(coordinator.dataDir, { recursive: true, encoding: 'utf8' })) {
      const file = join(coordinator.dataDir, entry);
      if (!statSync(file).isFile()) continue;
      const content = readFileSync(file).toString('latin1');
      expect(content).not.toContain(ALICE);
      expect(content).not.toContain(BOB);
    }
    for (const path of ['/api/clients', '/api/rounds', '/metrics']) expect(JSON.stringify((await coordinator.api(path)).body)).not.toContain(ALICE);
  });

  it('the SDK gets its token from the app at each connection, bound to the key it reports, and retries an expired one', async () => {
    const issuedFor: string[] = [];
    const { client, errors, welcomed } = watchedClient({
      serverUrl: coordinator.url,
      deviceToken: async ({ clientId, publicKey }) => {
        expect(publicKey.crv).toBe('P-256');
        issuedFor.push(clientId);
        // The app's first token has expired: the coordinator refuses it, the SDK asks again later.
        return deviceToken(ALICE, clientId, issuedFor.length === 1 ? { expiresAt: Math.floor(Date.now() / 1000) - 3600 } : {});
      },
      credentialRetryMs: 100,
      dataSource: ArrayDataSource.fromExamples([new Array(784).fill(0), new Array(784).fill(1)], [0, 1]),
    });
    try {
      await client.start();
      expect(await welcomed).toMatchObject({ clientId: client.clientId });
      expect(issuedFor).toEqual([client.clientId, client.clientId]);
      expect(errors.map((error) => error.code)).toEqual(['token_expired']);
    } finally {
      await client.dispose();
    }
  });
});

describe('enrolment configuration', () => {
  it('is off by default, and on with one key source plus the expected issuer and audience', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'flock-enrolment-config-'));
    try {
      const tokens = { FLOCK_CLIENT_TOKEN: 'client-token-0123456789', FLOCK_OPERATOR_TOKEN: 'operator-token-0123456789', FLOCK_DATA_DIR: dataDir };
      expect(loadConfig(tokens).enrolment).toBeNull();
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const keyFile = join(dataDir, 'app-key.pem');
      writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
      const on = { ...tokens, FLOCK_ENROLMENT_KEY_FILE: keyFile, FLOCK_ENROLMENT_ISSUER: ISSUER, FLOCK_ENROLMENT_AUDIENCE: AUDIENCE };
      const config = loadConfig(on).enrolment!;
      expect(config).toMatchObject({ issuer: ISSUER, audience: AUDIENCE, keys: { keyText: readFileSync(keyFile, 'utf8') } });
      // The user-key secret is generated once, kept in the data directory (0600) and reused.
      expect(config.userKeySecret.length).toBeGreaterThanOrEqual(16);
      expect(statSync(join(dataDir, 'user-key-secret')).mode & 0o777).toBe(0o600);
      expect(loadConfig(on).enrolment!.userKeySecret).toBe(config.userKeySecret);
      expect(
        loadConfig({
          ...tokens,
          FLOCK_ENROLMENT_JWKS_URL: 'https://app.example.com/jwks.json',
          FLOCK_ENROLMENT_ISSUER: ISSUER,
          FLOCK_ENROLMENT_AUDIENCE: AUDIENCE,
        }).enrolment!.keys,
      ).toEqual({
        jwksUrl: 'https://app.example.com/jwks.json',
      });
      expect(() => loadConfig({ ...on, FLOCK_ENROLMENT_ISSUER: '' })).toThrow(/FLOCK_ENROLMENT_ISSUER: is required when enrolment is on/);
      expect(() => loadConfig({ ...on, FLOCK_ENROLMENT_KEY: '{}' })).toThrow(/set only one of/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('reads a PEM public key, a JWK or a JWKS, and refuses private and symmetric keys', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    expect(parseKeySet(publicKey.export({ type: 'spki', format: 'pem' }) as string)).toEqual({ keys: [jwk] });
    expect(parseKeySet(JSON.stringify(jwk))).toEqual({ keys: [jwk] });
    expect(parseKeySet(JSON.stringify({ keys: [jwk, jwk] })).keys).toHaveLength(2);
    expect(() => parseKeySet(JSON.stringify(privateKey.export({ format: 'jwk' })))).toThrow(/public keys only/);
    expect(() => parseKeySet(JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' }))).toThrow(/public keys only/);
    expect(() => parseKeySet('not a key')).toThrow(/PEM public key, a JWK or a JWKS/);
  });
});
