import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { ClientEvent, PROTOCOL_VERSION } from '@flock/client-sdk/protocol';
import { DEVICE_DIRECTORY, type DeviceDirectory } from '../../src/devices/device-directory.js';
import { CLIENT_TOKEN, operatorFetch, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { watchedClient } from '../support/watched-client.js';
import { metrics, metricValue } from '../support/metrics.js';
import { newDeviceKey, ProtocolClient } from '../support/protocol-client.js';

/** Resolves when the server closes the socket (socket.io's reason: 'io server disconnect'). */
function serverDisconnect(socket: Socket): Promise<string> {
  return new Promise((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
}

/** A raw handshake with the given headers: the connect error's code, or 'connected'. */
function handshake(url: string, headers: Record<string, string> = {}, token = CLIENT_TOKEN): Promise<{ outcome: string; socket: Socket }> {
  const key = newDeviceKey();
  const socket = io(url, {
    auth: { token, publicKey: key.publicKey, protocolVersion: PROTOCOL_VERSION },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    extraHeaders: headers,
  });
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ outcome: 'connected', socket }));
    socket.once('connect_error', (error: Error & { data?: { code?: string } }) => resolve({ outcome: error.data?.code ?? error.message, socket }));
  });
}

describe('one socket flooding events (issue 10: 22,000 client:conditions stalled /api/health)', () => {
  let coordinator: TestCoordinator;
  const clients: ProtocolClient[] = [];
  beforeAll(async () => {
    coordinator = await startTestCoordinator();
  });
  afterAll(async () => {
    clients.forEach((client) => client.disconnect());
    await coordinator?.dispose();
  });

  it('drops the excess, counts it, disconnects the abuser once, and leaves honest devices and health alone', async () => {
    const honest = await ProtocolClient.connect(coordinator.url);
    const abuser = await ProtocolClient.connect(coordinator.url);
    clients.push(honest, abuser);
    const devices = coordinator.app.get<DeviceDirectory>(DEVICE_DIRECTORY);
    await waitFor(
      () => devices.counts(),
      (counts) => counts.eligible === 2,
      10_000,
      'two eligible devices',
    );

    const closed = serverDisconnect(abuser.socket);
    for (let i = 0; i < 22_000; i++) abuser.socket.emit(ClientEvent.conditions, { eligible: i % 2 === 0, reasons: i % 2 === 0 ? [] : ['not_idle'] });
    expect(await closed).toBe('io server disconnect');

    const text = await metrics(coordinator);
    // The first report and the burst (50) passed; past it, drops until the abuse budget (200) ran out.
    expect(
      metricValue(text, 'flock_socket_events_dropped_total', { namespace: 'devices', event: 'conditions', reason: 'rate_limited' }),
    ).toBeGreaterThanOrEqual(200);
    expect(metricValue(text, 'flock_sockets_disconnected_total', { namespace: 'devices', reason: 'event_flood' })).toBe(1);

    const health = await operatorFetch(coordinator.url, '/api/health', {}, '');
    expect(health).toEqual({ status: 200, body: { status: 'ok' } });
    // The honest device is still connected, eligible and served.
    expect(await devices.counts()).toMatchObject({ connected: 1, eligible: 1 });
    expect((await honest.fetchModel()).version).toBe(1);
  });

  it('applies the limits before the proof: an unproven socket that floods is closed too', async () => {
    const key = newDeviceKey();
    const socket = io(coordinator.url, {
      auth: { token: CLIENT_TOKEN, publicKey: key.publicKey, protocolVersion: PROTOCOL_VERSION },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const before = metricValue(await metrics(coordinator), 'flock_sockets_disconnected_total', { namespace: 'devices', reason: 'event_flood' });
    const closed = serverDisconnect(socket);
    for (let i = 0; i < 5_000; i++) socket.emit('no:such-event', { i });
    expect(await closed).toBe('io server disconnect');
    const text = await metrics(coordinator);
    expect(metricValue(text, 'flock_socket_events_dropped_total', { namespace: 'devices', event: 'unknown', reason: 'unknown_event' })).toBeGreaterThanOrEqual(
      200,
    );
    expect(metricValue(text, 'flock_sockets_disconnected_total', { namespace: 'devices', reason: 'event_flood' })).toBe(before + 1);
  });

  it('drops events sent on the operators namespace, where operators send none', async () => {
    const socket = io(`${coordinator.url}/operators`, {
      auth: { token: 'test-operator-token-0123456789' },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const closed = serverDisconnect(socket);
    for (let i = 0; i < 1_000; i++) socket.emit('dashboard:anything', 'x'.repeat(100));
    expect(await closed).toBe('io server disconnect');
    const text = await metrics(coordinator);
    expect(
      metricValue(text, 'flock_socket_events_dropped_total', { namespace: 'operators', event: 'unknown', reason: 'unknown_event' }),
    ).toBeGreaterThanOrEqual(200);
    expect(metricValue(text, 'flock_sockets_disconnected_total', { namespace: 'operators', reason: 'event_flood' })).toBe(1);
  });
});

describe('connections per address', () => {
  let coordinator: TestCoordinator;
  const sockets: Socket[] = [];
  afterEach(async () => {
    sockets.splice(0).forEach((socket) => socket.close());
    await coordinator?.dispose();
  });

  async function open(headers: Record<string, string> = {}): Promise<string> {
    const { outcome, socket } = await handshake(coordinator.url, headers);
    sockets.push(socket);
    return outcome;
  }

  it('refuses connections past the cap with too_many_connections, counted, and frees slots on disconnect', async () => {
    coordinator = await startTestCoordinator({ maxConnectionsPerAddress: 3 });
    // Refused handshakes (wrong token) and closed connections hold no slot afterwards.
    for (let i = 0; i < 5; i++) {
      const refused = await handshake(coordinator.url, {}, 'not-the-client-token');
      refused.socket.close();
      expect(refused.outcome).toBe('unauthorized');
      const { outcome, socket } = await handshake(coordinator.url);
      socket.close();
      expect(outcome).toBe('connected');
    }
    await waitFor(
      () => open(),
      (outcome) => outcome === 'connected',
      5_000,
      'the slots of closed sockets to come back',
    );
    expect([await open(), await open()]).toEqual(['connected', 'connected']);
    // X-Forwarded-For is anyone's to write: without FLOCK_TRUST_PROXY it changes nothing.
    expect(await open({ 'X-Forwarded-For': '203.0.113.50' })).toBe('too_many_connections');
    expect(await open()).toBe('too_many_connections');
    const text = await metrics(coordinator);
    expect(metricValue(text, 'flock_connections_refused_total', { reason: 'too_many_connections' })).toBe(2);
    sockets[0]!.close();
    await waitFor(
      () => open(),
      (outcome) => outcome === 'connected',
      5_000,
      'a slot after a disconnect',
    );
  });

  it('the SDK retries a full address later and connects once a slot is free', async () => {
    coordinator = await startTestCoordinator({ maxConnectionsPerAddress: 1 });
    expect(await open()).toBe('connected');
    const { client, errors, welcomed } = watchedClient({
      serverUrl: coordinator.url,
      clientToken: CLIENT_TOKEN,
      credentialRetryMs: 100,
    });
    try {
      await client.start();
      await waitFor(
        () => errors.length,
        (count) => count > 0,
        5_000,
        'the refusal',
      );
      sockets[0]!.close();
      expect(await welcomed).toMatchObject({ clientId: client.clientId });
      expect(errors[0]?.code).toBe('too_many_connections');
    } finally {
      await client.dispose();
    }
  });

  it('behind a trusted proxy counts the address the proxy saw, and the devices carry it', async () => {
    coordinator = await startTestCoordinator({ maxConnectionsPerAddress: 2, trustProxyHops: 1 });
    const viaProxy = (address: string) => ({ 'X-Forwarded-For': `198.51.100.99, ${address}` });
    expect([await open(viaProxy('203.0.113.1')), await open(viaProxy('203.0.113.1'))]).toEqual(['connected', 'connected']);
    expect(await open(viaProxy('203.0.113.1'))).toBe('too_many_connections');
    expect(await open(viaProxy('203.0.113.2'))).toBe('connected');
    const device = await ProtocolClient.connect(coordinator.url, { headers: viaProxy('203.0.113.3') });
    try {
      const devices = coordinator.app.get<DeviceDirectory>(DEVICE_DIRECTORY);
      const available = await waitFor(
        () => devices.available(),
        (list) => list.length === 1,
        10_000,
        'the device to be eligible',
      );
      expect(available[0]).toMatchObject({ clientId: device.clientId, address: '203.0.113.3' });
    } finally {
      device.disconnect();
    }
  });
});

describe('HTTP answers', () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator();
  });
  afterAll(async () => {
    await coordinator?.dispose();
  });

  it('carry the security headers and no X-Powered-By, on the API, the docs, the dashboard, errors and socket.io polling', async () => {
    const paths = [
      '/api/health',
      '/api/rounds',
      '/api/docs/openapi.json',
      '/dashboard',
      '/dashboard/assets/nope.js',
      '/nothing-here',
      '/socket.io/?EIO=4&transport=polling',
    ];
    for (const path of paths) {
      // Plain fetch: noKeepAliveFetch keeps no response headers.
      const response = await fetch(`${coordinator.url}${path}`);
      await response.arrayBuffer();
      expect(response.headers.get('x-powered-by'), path).toBeNull();
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(response.headers.get('x-frame-options'), path).toBe('SAMEORIGIN');
      expect(response.headers.get('referrer-policy'), path).toBe('no-referrer');
    }
    const api = await fetch(`${coordinator.url}/api/health`);
    expect(api.headers.get('strict-transport-security')).toMatch(/max-age=/);
  });

  it('health says only that the service is alive, even with devices and a round in flight; status needs the operator token', async () => {
    const device = await ProtocolClient.connect(coordinator.url);
    try {
      const started = await coordinator.api<{ id: string }>('/api/rounds', {
        method: 'POST',
        body: JSON.stringify({ minClients: 2, selectionTimeoutSeconds: 60 }),
      });
      expect(started.status).toBe(201);
      const health = await operatorFetch(coordinator.url, '/api/health', {}, '');
      expect(health).toEqual({ status: 200, body: { status: 'ok' } });
      expect(JSON.stringify(health.body)).not.toContain(started.body.id);
      expect((await operatorFetch(coordinator.url, '/api/status', {}, '')).status).toBe(401);
      expect((await coordinator.api('/api/status')).body).toMatchObject({ activeRound: started.body.id, connectedClients: 1 });
      await coordinator.api(`/api/rounds/${started.body.id}/cancel`, { method: 'POST' });
    } finally {
      device.disconnect();
    }
  });

  it('refuses oversized and non-JSON bodies cheaply and stays up', async () => {
    const huge = JSON.stringify({ minClients: 1, padding: 'x'.repeat(200_000) });
    expect((await coordinator.api('/api/rounds', { method: 'POST', body: huge })).status).toBe(413);
    const deep = '['.repeat(30_000) + ']'.repeat(30_000);
    expect((await coordinator.api('/api/rounds', { method: 'POST', body: deep })).status).toBe(400);
    const nested = `{"minClients":1,"strategyOptions":${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}}`;
    expect((await coordinator.api('/api/rounds', { method: 'POST', body: nested })).status).toBe(400);
    expect((await operatorFetch(coordinator.url, '/api/health', {}, '')).status).toBe(200);
  });
});
