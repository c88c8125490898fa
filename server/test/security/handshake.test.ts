import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '@flock/client-sdk/protocol';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { handshakeRefusal as refusal } from '../support/protocol-client.js';

describe('handshake with hostile token values', () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator();
  });
  afterAll(async () => {
    await coordinator?.dispose();
  });

  // Any JSON value may arrive as the token; a non-string once made createHash().update() throw and the process exit.
  const hostileTokens: unknown[] = [1, 0, true, false, null, { a: 1 }, ['x'], [], '', 'x'.repeat(100_000), { toString: 'x' }];
  for (const token of hostileTokens) {
    it(`refuses token ${JSON.stringify(token)?.slice(0, 40)} as unauthorized and stays up`, async () => {
      const answer = await refusal(coordinator.url, { token, clientId: 'device-0000001', protocolVersion: PROTOCOL_VERSION });
      expect(answer.code).toBe('unauthorized');
      const health = await coordinator.api<{ status: string }>('/api/health');
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('ok');
    });
  }

  it('refuses a missing auth object field by field without crashing', async () => {
    expect((await refusal(coordinator.url, {})).code).toBe('unauthorized');
    expect((await refusal(coordinator.url, { clientId: 5, protocolVersion: 'one' })).code).toBe('unauthorized');
    const health = await coordinator.api('/api/health');
    expect(health.status).toBe(200);
  });
});
