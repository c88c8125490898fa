/**
 * Issue 10: "A client id is not an identity. A second socket presenting a selected device's id kicks
 * the original and uploads in its place." The id is now the thumbprint of the device's key and every
 * connection must sign a fresh challenge: these are the attacks, against a real coordinator.
 */
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientEvent, PROTOCOL_VERSION, ServerEvent } from '@flock/client-sdk/protocol';
import type { RoundDetails, RoundRecord } from '../../src/contract/index.js';
import { CLIENT_TOKEN, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { handshakeRefusal, makeDelta, newDeviceKey, ProtocolClient, signChallenge } from '../support/protocol-client.js';

const PROOF_TIMEOUT_MS = 3_000;

let coordinator: TestCoordinator;
const devices: ProtocolClient[] = [];

async function connect(...args: Parameters<typeof ProtocolClient.connect>): Promise<ProtocolClient> {
  const device = await ProtocolClient.connect(...args);
  devices.push(device);
  return device;
}

/** A socket that passed the handshake and never proves its key; records every event it receives. */
async function unproven(auth: Record<string, unknown>): Promise<{ socket: Socket; challenge: Buffer; received: string[]; closed: Promise<string> }> {
  const socket = io(coordinator.url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  const received: string[] = [];
  socket.onAny((event: string) => received.push(event));
  const closed = new Promise<string>((resolve) => socket.on('disconnect', resolve));
  const challenge = await new Promise<Buffer>((resolve, reject) => {
    socket.once(ServerEvent.challenge, ({ challenge }: { challenge: Buffer }) => resolve(challenge));
    socket.once('connect_error', reject);
  });
  return { socket, challenge, received, closed };
}

async function refusedCount(reason: string): Promise<number> {
  const metrics = await coordinator.api<string>('/metrics');
  return Number(new RegExp(`flock_connections_refused_total\\{reason="${reason}"\\} (\\d+)`).exec(metrics.body)?.[1] ?? 0);
}

async function connectedCount(count: number): Promise<void> {
  await waitFor(
    () => coordinator.api<{ connected: number; eligible: number }>('/api/clients'),
    (r) => r.body.connected === count && r.body.eligible === count,
    5_000,
    `${count} clients`,
  );
}

beforeAll(async () => {
  coordinator = await startTestCoordinator({ proofTimeoutMs: PROOF_TIMEOUT_MS });
});
afterEach(async () => {
  devices.splice(0).forEach((device) => device.disconnect());
  await coordinator.devicesLeft();
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe("a selected device's identity cannot be taken over", () => {
  it('an impostor with its public key but not its private key, or with a replayed proof, neither kicks it nor uploads in its place', async () => {
    const victim = await connect(coordinator.url);
    await connectedCount(1);
    const { body: round } = await coordinator.api<RoundRecord>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 1, targetClients: 1, overSelection: 1, deadlineSeconds: 30, epochs: 1, batchSize: 10, learningRate: 0.1 }),
    });
    const configuration = await victim.configurations.next();
    expect(configuration.roundId).toBe(round.id);
    const model = await victim.fetchModel(configuration.modelVersion);
    const invalidProofsBefore = await refusedCount('invalid_proof');

    // 1. Presents the victim's public key and signs the challenge with its own key.
    const impostor = newDeviceKey();
    await expect(ProtocolClient.connect(coordinator.url, { key: impostor, publicKey: victim.key.publicKey })).rejects.toThrow('invalid_proof');
    // 2. Replays the proof it saw the victim send (a signature of the victim's own, older challenge).
    await expect(ProtocolClient.connect(coordinator.url, { key: impostor, publicKey: victim.key.publicKey, proof: () => victim.proof })).rejects.toThrow(
      'invalid_proof',
    );
    // 3. Never proves, and sends the victim's round traffic anyway: an upload, an abandon, a conditions report.
    const silent = await unproven({ token: CLIENT_TOKEN, publicKey: victim.key.publicKey, protocolVersion: PROTOCOL_VERSION });
    const acknowledged: unknown[] = [];
    const forged = {
      roundId: round.id,
      modelVersion: configuration.modelVersion,
      numExamples: 1_000_000,
      trainLoss: 0.1,
      delta: { shapes: [], data: Buffer.alloc(0) },
    };
    silent.socket.emit(ClientEvent.update, forged, (result: unknown) => acknowledged.push(result));
    silent.socket.emit(ClientEvent.abandon, { roundId: round.id, reason: 'stopped' });
    silent.socket.emit(ClientEvent.conditions, { eligible: false, reasons: ['not_charging'] });
    silent.socket.emit(ClientEvent.fetchModel, {}, (result: unknown) => acknowledged.push(result));

    // The victim kept its socket and its place: its upload is the one that counts.
    expect(victim.socket.connected).toBe(true);
    expect(await victim.upload(configuration, model, makeDelta(model, 1), 100)).toEqual({ accepted: true });
    const ended = await waitFor(
      () => coordinator.api<RoundDetails>(`/api/rounds/${round.id}`),
      (r) => r.body.status === 'committed',
      20_000,
      'the round to commit',
    );
    expect(ended.body.metrics).toMatchObject({ selected: 1, accepted: 1 });
    expect(ended.body.metrics.dropped).toEqual({});
    await victim.published.next();
    expect(victim.socket.connected).toBe(true);
    expect(await refusedCount('invalid_proof')).toBe(invalidProofsBefore + 2);

    // The unproven socket heard nothing but its challenge (no welcome, configuration or publication), got no answers, and is dropped in time.
    expect(await silent.closed).toBe('io server disconnect');
    expect(silent.received).toEqual([ServerEvent.challenge]);
    expect(acknowledged).toEqual([]);
    expect(await refusedCount('proof_timeout')).toBeGreaterThanOrEqual(1);
    expect((await coordinator.api<{ connected: number }>('/api/clients')).body.connected).toBe(1);
  });

  it('the device itself may reconnect: its new, proven socket replaces the old one', async () => {
    const first = await connect(coordinator.url);
    const firstClosed = new Promise<string>((resolve) => first.socket.on('disconnect', resolve));
    const second = await connect(coordinator.url, { key: first.key });
    expect(second.welcome.clientId).toBe(first.clientId);
    expect(await firstClosed).toBe('io server disconnect');
    await connectedCount(1);
  });

  it('refuses every malformed or misdirected proof with invalid_proof and stays up', async () => {
    const key = newDeviceKey();
    const other = newDeviceKey();
    const proofs: ((challenge: Buffer) => unknown)[] = [
      () => null,
      () => ({}),
      () => ({ signature: 'not binary' }),
      () => ({ signature: Buffer.alloc(64) }),
      (challenge) => ({ signature: Buffer.concat([signChallenge(key, challenge), Buffer.alloc(1)]) }),
      (challenge) => ({ signature: signChallenge(key, challenge, other.clientId) }), // signed for another client id
      (challenge) => ({ signature: signChallenge(key, Buffer.from(challenge).reverse()) }), // another challenge
      (challenge) => ({ signature: signChallenge(other, challenge, key.clientId) }), // another key
    ];
    for (const proof of proofs) await expect(ProtocolClient.connect(coordinator.url, { key, proof })).rejects.toThrow('invalid_proof');
    expect((await coordinator.api<{ status: string }>('/api/health')).body.status).toBe('ok');
    // The same key with a real signature is welcome, even when the proof asks for no acknowledgement.
    expect((await connect(coordinator.url, { key })).welcome.clientId).toBe(key.clientId);
    const quiet = await unproven({ token: CLIENT_TOKEN, publicKey: other.publicKey, protocolVersion: PROTOCOL_VERSION });
    const welcomed = new Promise((resolve) => quiet.socket.once(ServerEvent.welcome, resolve));
    quiet.socket.emit(ClientEvent.proof, { signature: signChallenge(other, quiet.challenge) });
    expect(await welcomed).toMatchObject({ clientId: other.clientId });
    quiet.socket.disconnect();
  });

  it('refuses self-chosen ids: a protocol 1 handshake, and public keys that are missing, malformed or not on the curve', async () => {
    const { publicKey } = newDeviceKey();
    const base = { token: CLIENT_TOKEN, protocolVersion: PROTOCOL_VERSION };
    expect((await handshakeRefusal(coordinator.url, { token: CLIENT_TOKEN, clientId: 'device-0000001', protocolVersion: 1 })).code).toBe('protocol_mismatch');
    const badKeys: unknown[] = [
      undefined,
      'device-0000001',
      { ...publicKey, x: publicKey.y.slice(1) + 'A', y: publicKey.y }, // a well-formed coordinate off the curve
      { ...publicKey, crv: 'P-384' },
      { ...publicKey, d: publicKey.x }, // a private member
      { ...publicKey, x: 'A'.repeat(100_000) },
      [publicKey],
    ];
    for (const bad of badKeys) expect((await handshakeRefusal(coordinator.url, { ...base, publicKey: bad })).code).toBe('invalid_public_key');
    expect((await coordinator.api<{ status: string }>('/api/health')).body.status).toBe('ok');
  });
});
