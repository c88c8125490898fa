/** How the simulator's threads report a fatal error to the main loop, which checks it whenever it waits. */

/** The first fatal error of any thread; later ones are consequences and are dropped. */
export class FirstFailure {
  private first: Error | null = null;

  get error(): Error | null {
    return this.first;
  }

  record(error: Error): void {
    this.first ??= error;
  }

  throwIfAny(): void {
    if (this.first) throw this.first;
  }
}

/** Polls `check` every 50 ms until it holds; throws the first failure meanwhile, or after `timeoutMs`. */
export async function waitUntil(what: string, timeoutMs: number, failure: FirstFailure, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    failure.throwIfAny();
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
