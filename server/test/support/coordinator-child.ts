import type { ChildProcess } from 'node:child_process';

/** A coordinator child process's start-up: its URL once it announces it, and everything it printed. */
export interface CoordinatorStartup {
  url: string;
  output: () => string;
}

/**
 * Waits for a `node server/dist/main.js` child to print "Flock coordinator on URL" (on stdout or
 * stderr, whichever it was given); rejects with its output if it exits or takes longer.
 */
export function coordinatorStarted(child: ChildProcess, name: string, timeoutMs = 90_000): Promise<CoordinatorStartup> {
  let output = '';
  return new Promise((resolveStartup, reject) => {
    const timer = setTimeout(() => reject(new Error(`coordinator ${name} did not start:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /Flock coordinator on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveStartup({ url: match[1]!, output: () => output });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`coordinator ${name} exited with ${code}:\n${output}`));
    });
  });
}
