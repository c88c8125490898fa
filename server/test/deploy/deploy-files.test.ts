/**
 * The container artifacts, checked without a container runtime (none runs here; deploy/README.md
 * says what was built and run with buildah): the Dockerfile's stages, user, health check and copied
 * paths; the compose file's services, wiring and environment (checked by the coordinator's own
 * environment schema); and the image's health check command run against a real coordinator.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENVIRONMENT_VARIABLES, parseEnvironment } from '../../src/config/environment.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

const ROOT = resolve(import.meta.dirname, '../../..');

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions, continuation lines joined, comments and parser directives dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
}

/** The stages: instructions from each FROM to the next. */
function stages(all: Instruction[]): { name: string; body: Instruction[] }[] {
  const out: { name: string; body: Instruction[] }[] = [];
  for (const instruction of all) {
    if (instruction.keyword === 'FROM') out.push({ name: /\bAS\s+(\S+)/i.exec(instruction.args)?.[1] ?? '', body: [] });
    else out.at(-1)?.body.push(instruction);
  }
  return out;
}

/** `${NAME}`, `${NAME:?message}` and `${NAME:-default}` as compose interpolates them, from `vars`. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::[?-]([^}]*))?\}/g, (_, name: string) => {
    const found = vars[name];
    if (found === undefined) throw new Error(`compose variable ${name} has no value in example.env`);
    return found;
  });
}

function envFile(path: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) vars[match[1]!] = match[2]!;
  }
  return vars;
}

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  user?: string;
  ports?: string[];
  volumes?: string[];
}

describe('Dockerfile', () => {
  const all = instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const [build, runtime, ...others] = stages(all);

  it('has a build stage and a runtime stage', () => {
    expect(others).toEqual([]);
    expect(build?.name).toBe('build');
    expect(runtime?.name).toBe('runtime');
    // The build stage installs and builds; the runtime stage takes only what it built.
    expect(build!.body.some((i) => i.keyword === 'RUN' && i.args.includes('pnpm install --frozen-lockfile'))).toBe(true);
    expect(build!.body.some((i) => i.keyword === 'RUN' && i.args.includes('--prod'))).toBe(true);
    const runtimeRuns = runtime!.body.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    for (const tool of ['pnpm', 'g++', 'make', 'python3', ' npm ']) expect(runtimeRuns.join(' ')).not.toContain(tool);
    const copies = runtime!.body.filter((i) => i.keyword === 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    expect(copies.every((i) => i.args.startsWith('--from=build '))).toBe(true);
  });

  it('runs as a non-root user, exposes its ports (the API and the upload listener) and checks /api/health', () => {
    const user = runtime!.body.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(runtime!.body.some((i) => i.keyword === 'RUN' && i.args.includes(`useradd --system --uid 10001`))).toBe(true);
    expect(runtime!.body.find((i) => i.keyword === 'EXPOSE')?.args).toBe('8080 8081');
    expect(runtime!.body.filter((i) => i.keyword === 'ENV').map((i) => i.args)).toContainEqual(expect.stringContaining('PORT=8080'));
    expect(runtime!.body.find((i) => i.keyword === 'HEALTHCHECK')?.args).toContain('/api/health');
    expect(runtime!.body.find((i) => i.keyword === 'CMD')?.args).toBe('["node", "server/dist/main.js"]');
  });

  it('copies only paths that exist in the repository', () => {
    for (const copy of build!.body.filter((i) => i.keyword === 'COPY')) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(existsSync(join(ROOT, source)), source).toBe(true);
    }
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
    expect(ignored).toMatch(/^\*\*\/node_modules$/m);
    expect(ignored).toMatch(/^\*\*\/dist$/m);
  });
});

describe('deploy/compose.yaml', () => {
  const compose = load(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8')) as { services: Record<string, ComposeService> };
  const vars = envFile(join(ROOT, 'deploy/example.env'));
  const services = compose.services;

  it('runs two coordinators on PostgreSQL and Redis, RabbitMQ, a processor and a load balancer', () => {
    expect(Object.keys(services).sort()).toEqual(['coordinator-1', 'coordinator-2', 'lb', 'postgres', 'processor', 'rabbitmq', 'redis']);
    for (const name of ['coordinator-1', 'coordinator-2', 'processor']) {
      const service = services[name]!;
      expect(service.image).toBe('flock:latest');
      expect(existsSync(join(ROOT, 'deploy', service.build!.context, service.build!.dockerfile))).toBe(true);
      const env = service.environment!;
      expect(interpolate(env.FLOCK_DATABASE_URL!, vars)).toMatch(/^postgres:\/\/flock:[^@]+@postgres:5432\/flock$/);
      expect(env.FLOCK_REDIS_URL).toBe('redis://redis:6379');
      expect(interpolate(env.FLOCK_AMQP_URL!, vars)).toMatch(/^amqp:\/\/flock:[^@]+@rabbitmq:5672$/);
    }
    expect(services.processor!.command).toEqual(['node', 'server/dist/cli/main.js', 'processor', '--follow']);
    expect(services.processor!.healthcheck).toEqual({ disable: true });
    const nginx = readFileSync(join(ROOT, 'deploy/nginx.conf'), 'utf8');
    expect(nginx).toContain('server coordinator-1:8080');
    expect(nginx).toContain('server coordinator-2:8080');
    expect(nginx).toContain('ip_hash;');
  });

  it('keeps secrets out of the file and gives the coordinators an environment their schema accepts', () => {
    // The processor's variables belong to the on-demand module; the rest must be the coordinator's own.
    const known = new Set([...ENVIRONMENT_VARIABLES, 'FLOCK_AMQP_URL', 'FLOCK_COORDINATOR_URL', 'FLOCK_URL']);
    for (const name of ['coordinator-1', 'coordinator-2']) {
      const env = services[name]!.environment!;
      for (const key of Object.keys(env)) expect(known.has(key), `${name}: ${key}`).toBe(true);
      for (const key of ['FLOCK_OPERATOR_TOKEN', 'FLOCK_CLIENT_TOKEN', 'FLOCK_INFERENCE_KEYS']) expect(env[key]).toMatch(/^\$\{[A-Z_]+:\?/);
      const resolved = Object.fromEntries(Object.entries(env).map(([key, value]) => [key, interpolate(value, vars)]));
      expect(() => parseEnvironment(resolved)).not.toThrow();
    }
  });

  it('starts what depends on a healthy service only after a health check can say so', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services[dependency], `${name} depends on ${dependency}`).toBeDefined();
        if (condition !== 'service_healthy') continue;
        const target = services[dependency]!;
        // The flock image's own HEALTHCHECK, or the service's.
        expect(target.image === 'flock:latest' || (target.healthcheck?.test?.length ?? 0) > 0, `${dependency} has a health check`).toBe(true);
        expect(target.healthcheck?.disable).not.toBe(true);
      }
    }
  });
});

describe("the image's health check command", () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await startTestCoordinator();
  });
  afterAll(() => coordinator?.dispose());

  const command = (): string[] => {
    const healthcheck = instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).find((i) => i.keyword === 'HEALTHCHECK')!;
    return JSON.parse(healthcheck.args.slice(healthcheck.args.indexOf('CMD ') + 4)) as string[];
  };

  /** Runs it as the container runtime would (async: the coordinator answers on this process's event loop). */
  const run = (args: string[], port: string): Promise<number | null> =>
    new Promise((resolveRun) => {
      const child = spawn(process.execPath, args, { env: { ...process.env, PORT: port }, stdio: 'ignore', timeout: 10_000 });
      child.on('exit', (code) => resolveRun(code));
    });

  it('exits 0 against a running coordinator and 1 when nothing answers', async () => {
    const [program, ...args] = command();
    expect(program).toBe('node');
    expect(await run(args, new URL(coordinator.url).port)).toBe(0);
    expect(await run(args, '1')).toBe(1);
  });
});
