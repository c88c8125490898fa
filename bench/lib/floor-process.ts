/**
 * A bench's floor server (bench/lib/*-floor-server.ts) as a child process of its own, run through
 * tsx: started, awaited until it prints "listening PORT", its CPU readable, and killed on close.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { processCpuSeconds } from './coordinator-process.js';

export interface FloorProcess {
  url: string;
  /** User + system CPU seconds of the whole process (all threads) so far. */
  cpuSeconds(): number;
  close(): void;
}

/** Starts `bench/lib/<script>` with `args` and resolves once it listens. */
export async function startFloorProcess(script: string, args: readonly string[]): Promise<FloorProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((listening, failed) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const match = /^listening (\d+)$/.exec(line);
        if (match) listening(Number(match[1]));
      });
      child.once('exit', (code) => failed(new Error(`${script} exited with ${code}`)));
    });
    return { url: `http://127.0.0.1:${port}`, cpuSeconds: () => processCpuSeconds(child.pid!), close: () => child.kill('SIGKILL') };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}
