/** `flock processor`'s usage errors and a failed start, in-process (the event processor itself: test/on-demand/). */
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { runFlock } from './harness.js';

const TOKEN = 'processor-test-operator-token-0123';
const BROKER = process.env.FLOCK_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('flock processor', () => {
  it('needs a broker (exit 2)', async () => {
    const run = await runFlock(['processor', '--token', TOKEN]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('FLOCK_AMQP_URL');
  });

  it('refuses a broker URL that is not amqp:// and never echoes it', async () => {
    const run = await runFlock(['processor', '--token', TOKEN], { env: { FLOCK_AMQP_URL: 'http://user:secret-password@host' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('amqp://');
    expect(run.stderr).not.toContain('secret-password');
  });

  it('takes a pinned version or --follow, not both', async () => {
    const run = await runFlock(['processor', '--token', TOKEN, '--amqp-url', BROKER, '--version', '2', '--follow']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--version and --follow');
  });

  it('refuses bad numbers before starting anything', async () => {
    const run = await runFlock(['processor', '--token', TOKEN, '--amqp-url', BROKER, '--prefetch', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--prefetch');
    const port = await runFlock(['processor', '--token', TOKEN, '--amqp-url', BROKER, '--metrics-port', '70000']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('expected an integer from 0 to 65535, got "70000"');
  });

  it('exits 1 with the reason when the coordinator cannot be reached, taking no request', async () => {
    const port = await closedPort();
    const run = await runFlock(['processor', '--token', TOKEN, '--amqp-url', BROKER, '--url', `http://127.0.0.1:${port}`, '--queue', 'flock.test.unreachable']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('could not start');
    expect(run.stderr).not.toContain(TOKEN);
  });
});
