import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiError, ConnectionError, FlockApiClient } from '../../src/cli/api-client.js';
import { ACTIVE_ROUND_ID, committedRound, startContractServer, type ContractServer } from './contract-server.js';
import { emptyDir, runFlock, type CliRun } from './harness.js';

let server: ContractServer;

beforeEach(async () => {
  server = await startContractServer();
});
afterEach(async () => {
  await server.close();
});

const WRONG = 'wrong-token-zzzzzzzzzzzzzzzz';

function writeTokenFile(dir: string, token: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'operator-token'), `${token}\n`, { mode: 0o600 });
}

function expectNoSecret(run: CliRun, ...secrets: string[]): void {
  for (const secret of secrets) {
    expect(run.stdout).not.toContain(secret);
    expect(run.stderr).not.toContain(secret);
  }
}

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('operator token', () => {
  it('is read from ./data/operator-token by default (the file the coordinator writes)', async () => {
    const cwd = emptyDir();
    writeTokenFile(join(cwd, 'data'), server.token);
    const run = await runFlock(['model', 'list', '--url', server.url], { cwd });
    expect(run.code).toBe(0);
    expect(server.requests[0]!.authorization).toBe(`Bearer ${server.token}`);
    expectNoSecret(run, server.token);
  });

  it('is read from $FLOCK_DATA_DIR/operator-token, relative to the working directory', async () => {
    const cwd = emptyDir();
    writeTokenFile(join(cwd, 'var', 'flock'), server.token);
    const run = await runFlock(['round', 'list', '--url', server.url], { cwd, env: { FLOCK_DATA_DIR: 'var/flock' } });
    expect(run.code).toBe(0);
    expect(server.requests[0]!.authorization).toBe(`Bearer ${server.token}`);
  });

  it('FLOCK_OPERATOR_TOKEN beats the file, and --token beats both', async () => {
    const cwd = emptyDir();
    writeTokenFile(join(cwd, 'data'), WRONG);
    const fromEnv = await runFlock(['model', 'list', '--url', server.url], { cwd, env: { FLOCK_OPERATOR_TOKEN: server.token } });
    expect(fromEnv.code).toBe(0);
    const fromFlag = await runFlock(['model', 'list', '--url', server.url, '--token', server.token], { cwd, env: { FLOCK_OPERATOR_TOKEN: WRONG } });
    expect(fromFlag.code).toBe(0);
    expect(server.requests.map((r) => r.authorization)).toEqual([`Bearer ${server.token}`, `Bearer ${server.token}`]);
  });

  it('a refused token exits 1, names where the token came from, and never prints it', async () => {
    const run = await runFlock(['status', '--url', server.url], { env: { FLOCK_OPERATOR_TOKEN: WRONG } });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('operator token required: send Authorization: Bearer <token> (HTTP 401 from GET /api/status)');
    expect(run.stderr).toContain('refused the operator token from FLOCK_OPERATOR_TOKEN');
    expectNoSecret(run, WRONG, server.token);
  });

  it('exits 2 with a clear message when no token can be found', async () => {
    const cwd = emptyDir();
    const run = await runFlock(['status', '--url', server.url], { cwd });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no operator token found: pass --token, set FLOCK_OPERATOR_TOKEN');
    expect(run.stderr).toContain(join(cwd, 'data', 'operator-token'));
    expect(server.requests).toHaveLength(0);
  });

  it('never appears in any output, whichever command, format or outcome', async () => {
    server.state.activeRound = false;
    const commands = [
      ['status'],
      ['--json', 'status'],
      ['round', 'list'],
      ['round', 'list', '--json'],
      ['round', 'show', ACTIVE_ROUND_ID],
      ['round', 'start', '--wait'],
      ['round', 'start', '--json'],
      ['round', 'cancel', ACTIVE_ROUND_ID],
      ['model', 'list'],
      ['model', 'show', '3', '--json'],
      ['model', 'rollback', '1'],
      ['model', 'show', '42'],
      ['round', 'nope'],
    ];
    for (const args of commands) {
      const viaFlag = await runFlock([...args, '--url', server.url, '--token', server.token]);
      expectNoSecret(viaFlag, server.token);
      const viaEnv = await runFlock([...args, '--url', server.url], { env: { FLOCK_OPERATOR_TOKEN: server.token } });
      expectNoSecret(viaEnv, server.token);
    }
  });
});

describe('exit codes', () => {
  it('2 for usage errors (commander), with its message', async () => {
    const env = { FLOCK_OPERATOR_TOKEN: server.token };
    const cases: [string[], string][] = [
      [['frobnicate'], "unknown command 'frobnicate'"],
      [['round', 'list', '--bogus'], "unknown option '--bogus'"],
      [['round', 'start', '--min-clients', 'two'], 'expected an integer >= 1, got "two"'],
      [['round', 'start', '--learning-rate', '-1'], 'expected a positive number'],
      [['round', 'show'], "missing required argument 'id'"],
      [['model', 'show', 'latest'], 'expected an integer >= 1, got "latest"'],
      [['round'], 'Usage: flock round'],
    ];
    for (const [args, message] of cases) {
      const run = await runFlock([...args, '--url', server.url], { env });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toContain(message);
    }
    expect(server.requests).toHaveLength(0);
  });

  it('2 for an invalid URL, 0 for --help', async () => {
    const bad = await runFlock(['status', '--url', 'not a url', '--token', server.token]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid coordinator URL "not a url"');
    const help = await runFlock(['round', 'start', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--target-clients <n>');
    expect(help.stdout).toContain('--wait');
  });

  it('3 when the coordinator cannot be reached, naming the URL and how to start it', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}`;
    const run = await runFlock(['status', '--url', url, '--token', server.token]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`cannot reach the coordinator at ${url} (ECONNREFUSED)`);
    expect(run.stderr).toContain('pnpm start');
    const json = await runFlock(['--json', 'round', 'list'], { env: { FLOCK_URL: url, FLOCK_OPERATOR_TOKEN: server.token } });
    expect(json.code).toBe(3);
    expect(json.stdout).toBe('');
  });

  it('defaults to http://localhost:$PORT, else :8080', async () => {
    const port = await closedPort();
    const viaPort = await runFlock(['model', 'list'], { env: { PORT: String(port), FLOCK_OPERATOR_TOKEN: server.token } });
    expect(viaPort.code).toBe(3);
    expect(viaPort.stderr).toContain(`http://localhost:${port}`);
    // FLOCK_URL beats PORT.
    const viaUrl = await runFlock(['model', 'list'], { env: { PORT: String(port), FLOCK_URL: server.url, FLOCK_OPERATOR_TOKEN: server.token } });
    expect(viaUrl.code).toBe(0);
  });

  it('1 when the server answers something that is not the API', async () => {
    const html = createHttpServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end('<html>hello</html>');
    });
    await new Promise<void>((resolve) => html.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(html.address() as AddressInfo).port}`;
    try {
      const run = await runFlock(['model', 'list', '--url', url, '--token', server.token]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('expected a JSON response from GET /api/models');
      expect(run.stderr).toContain('a Flock coordinator?');
    } finally {
      await new Promise<void>((resolve) => html.close(() => resolve()));
    }
  });
  it('1 when a response breaks the REST contract, naming the field', async () => {
    // A coordinator of another version: its round records lack validationMs and strategyOptions.
    const { strategyOptions: _options, ...params } = committedRound().params;
    const { validationMs: _validation, ...metrics } = committedRound().metrics;
    const old = createHttpServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify([{ ...committedRound(), params, metrics }]));
    });
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(old.address() as AddressInfo).port}`;
    try {
      const run = await runFlock(['round', 'list', '--json', '--url', url, '--token', server.token]);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain('the response of GET /api/rounds?limit=20 breaks the API contract');
      expect(run.stderr).toContain('0.params.strategyOptions');
      expect(run.stderr).toContain('0.metrics.validationMs');
    } finally {
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
  });
});

describe('FlockApiClient', () => {
  it('throws ApiError with the status and the server message, and ConnectionError with the URL', async () => {
    const client = new FlockApiClient({ baseUrl: `${server.url}/`, token: server.token });
    expect(client.baseUrl).toBe(server.url);
    expect(await client.health()).toEqual({ status: 'ok' });
    const status = await client.status();
    expect(status.eligibleClients).toBe(9);
    const error = await client.startRound({ minClients: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, method: 'POST', path: '/api/rounds' });
    const invalid = await client.startRound({ minClients: 3, targetClients: 1 }).catch((e: unknown) => e);
    expect((invalid as ApiError).message).toBe('targetClients: targetClients must be at least minClients');

    const unauthenticated = new FlockApiClient({ baseUrl: server.url });
    expect(await unauthenticated.health()).toMatchObject({ status: 'ok' });
    await expect(unauthenticated.listModels()).rejects.toMatchObject({ name: 'ApiError', status: 401 });

    const port = await closedPort();
    const unreachable = new FlockApiClient({ baseUrl: `http://127.0.0.1:${port}` });
    const refused = await unreachable.health().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectionError);
    expect(refused).toMatchObject({ url: `http://127.0.0.1:${port}`, reason: 'ECONNREFUSED' });
  });
});
