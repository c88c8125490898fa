/**
 * The coordinator as its own process (the built entry point, a fresh data directory) and raw
 * protocol devices that prove a fresh key: what the benchmarks that measure the coordinator from
 * outside share.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClientEvent, PROTOCOL_VERSION, ServerEvent, proofMessage, thumbprintInput } from '../../client-sdk/src/protocol/index.js';
import { coordinatorStarted } from '../../server/test/support/coordinator-child.js';

export const CLIENT_TOKEN = 'bench-client-token-0123456789';
export const OPERATOR_TOKEN = 'bench-operator-token-0123456789';
const MAIN = resolve(import.meta.dirname, '../../server/dist/main.js');

export interface CoordinatorProcess {
  child: ChildProcess;
  /** The data directory it was started with (deleted by close). */
  dataDir: string;
  url: string;
  /** User + system CPU seconds the process has used so far (from /proc: 10 ms resolution). */
  cpuSeconds(): number;
  /** The same, split into its main thread and all its other threads (V8's garbage-collector helpers, libuv's pool, workers). */
  threadCpuSeconds(): ThreadCpu;
  /** Resident memory of the process now (VmRSS from /proc). */
  rssBytes(): number;
  close(): void;
}

/**
 * Starts `server/dist/main.js` (build first) with these environment variables on top of the
 * defaults (undefined removes one) and these Node options (e.g. --cpu-prof).
 */
export async function startCoordinator(env: Record<string, string | undefined>, name = 'bench', nodeArgs: readonly string[] = []): Promise<CoordinatorProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), `flock-${name}-`));
  const merged: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    FLOCK_DATA_DIR: dataDir,
    FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
    FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
    FLOCK_DEFAULT_MODEL_EXAMPLES: '600',
    FLOCK_TEST_SET: 'none',
    LOG_LEVEL: 'error',
  };
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete merged[key];
    else merged[key] = value;
  }
  const child = spawn(process.execPath, [...nodeArgs, MAIN], { env: merged, stdio: ['ignore', 'ignore', 'pipe'] });
  const { url } = await coordinatorStarted(child, name, 120_000);
  return {
    child,
    dataDir,
    url,
    cpuSeconds: () => processCpuSeconds(child.pid!),
    threadCpuSeconds: () => threadCpuSeconds(child.pid!),
    rssBytes: () => processRssBytes(child.pid!),
    close: () => {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** VmRSS of a process, from /proc/<pid>/status (in kB there). */
export function processRssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

/** utime + stime of a process, from /proc/<pid>/stat (all its threads). */
export function processCpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** CPU seconds of a process's main thread (its thread id is the pid) and of its other threads together. */
export interface ThreadCpu {
  main: number;
  others: number;
}

/** utime + stime of each of a process's threads, from /proc/<pid>/task/<tid>/stat, summed as ThreadCpu. */
export function threadCpuSeconds(pid: number): ThreadCpu {
  const cpu = { main: 0, others: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const seconds = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
      if (Number(tid) === pid) cpu.main += seconds;
      else cpu.others += seconds;
    } catch {
      // The thread ended between listing and reading: its time is in no thread's count any more.
    }
  }
  return cpu;
}

/** utime + stime from a /proc stat file (fields 14 and 15, in clock ticks of 1/100 s). */
function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The little of socket.io-client used here (a dependency of the server, not of the root package). */
export interface RawSocket {
  connected: boolean;
  emit(event: string, ...args: unknown[]): void;
  on(event: string, listener: (...args: never[]) => void): void;
  once(event: string, listener: (...args: never[]) => void): void;
  timeout(ms: number): { emitWithAck(event: string, ...args: unknown[]): Promise<unknown> };
  disconnect(): void;
}
type Io = (url: string, options: Record<string, unknown>) => RawSocket;
const { io } = createRequire(resolve(import.meta.dirname, '../../server/package.json'))('socket.io-client') as { io: Io };

/** A bare socket.io connection (websocket transport, no handshake of ours): for servers other than the coordinator. */
export async function connectRawSocket(url: string): Promise<RawSocket> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise<void>((connected, refused) => {
    socket.once('connect', () => connected());
    socket.once('connect_error', (error: Error) => refused(error));
  });
  return socket;
}

/**
 * A device with a fresh key that proved it (handshake, challenge, signature) and was welcomed.
 * `localAddress`: the loopback source address (127.x.y.z) to connect from, so that many devices
 * do not share the coordinator's per-address caps.
 */
export async function connectDevice(url: string, options: { localAddress?: string } = {}): Promise<RawSocket> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { x, y } = publicKey.export({ format: 'jwk' });
  const jwk = { kty: 'EC', crv: 'P-256', x: x!, y: y! } as const;
  const clientId = createHash('sha256').update(thumbprintInput(jwk)).digest('base64url');
  const socket = io(url, {
    auth: { token: CLIENT_TOKEN, publicKey: jwk, protocolVersion: PROTOCOL_VERSION },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  await new Promise<void>((welcomed, refused) => {
    socket.once(ServerEvent.welcome, () => welcomed());
    socket.once('connect_error', (error: Error) => refused(error));
    socket.once(ServerEvent.challenge, ({ challenge }: { challenge: Uint8Array }) => {
      socket.emit(ClientEvent.proof, {
        signature: sign('sha256', proofMessage(new Uint8Array(challenge), clientId), { key: privateKey, dsaEncoding: 'ieee-p1363' }),
      });
    });
  });
  return socket;
}
