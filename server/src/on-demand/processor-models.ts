/**
 * Which version an event processor serves: a pinned one, or the current one, followed without a
 * restart. A new version is fetched from the coordinator and loaded into every inference worker
 * before requests go to it; requests already queued finish on the version they were given, and a
 * version is unloaded only once none is left.
 */
import type { Logger } from 'pino';
import type { InferencePool } from '../serving/inference-pool.js';
import type { ModelSource } from './model-source.js';
import { InFlightCounts } from '../serving/in-flight-counts.js';

export interface ServedVersion {
  version: number;
  /** The model's input shape, -1 the batch dimension. */
  inputShape: number[];
  outputShape: number[];
}

export class ProcessorModels {
  private served: ServedVersion | null = null;
  private switching: Promise<void> = Promise.resolve();
  private readonly inFlight = new InFlightCounts();
  private readonly retired = new Set<number>();

  constructor(
    private readonly pool: InferencePool,
    private readonly source: ModelSource,
    /** A pinned version, or `follow` the current one. */
    private readonly mode: number | 'follow',
    private readonly log: Logger,
    private readonly onSwitch: (next: number, previous: number | null) => void = () => undefined,
  ) {}

  get following(): boolean {
    return this.mode === 'follow';
  }

  /** The version new requests go to; null before the first one is loaded. */
  get current(): ServedVersion | null {
    return this.served;
  }

  /** Loads the pinned version, or the current one. */
  async start(): Promise<ServedVersion> {
    await this.switchTo(this.mode === 'follow' ? 'current' : this.mode);
    return this.served!;
  }

  /** A version was announced or found by polling: when following and it is newer, switch to it (one switch at a time). */
  consider(version: number | 'current'): Promise<void> {
    if (this.mode !== 'follow') return Promise.resolve();
    this.switching = this.switching.then(async () => {
      try {
        // Polling asks for the number first (model.json only); the weights are fetched only for a newer version.
        const wanted = version === 'current' ? await this.source.currentVersion() : version;
        if (this.served && wanted <= this.served.version) return;
        await this.switchTo(wanted);
      } catch (error) {
        this.log.warn({ version, err: error }, 'could not switch to the new version; serving the previous one');
      }
    });
    return this.switching;
  }

  acquire(version: number): void {
    this.inFlight.acquire(version);
  }

  release(version: number): void {
    this.inFlight.release(version);
    this.unloadIdle();
  }

  private async switchTo(version: number | 'current'): Promise<void> {
    const fetched = await this.source.fetch(version);
    const signature = await this.pool.load(fetched.version, fetched.parts);
    const input = signature.inputs[0];
    const output = signature.outputs[0];
    if (!input || !output) throw new Error(`version ${fetched.version} has no input or no output`);
    const previous = this.served?.version ?? null;
    this.served = { version: fetched.version, inputShape: input.shape, outputShape: output.shape };
    if (previous !== null && previous !== fetched.version) this.retired.add(previous);
    this.log.info({ version: fetched.version, previous }, 'serving version');
    this.onSwitch(fetched.version, previous);
    this.unloadIdle();
  }

  private unloadIdle(): void {
    for (const version of this.retired) {
      if (this.inFlight.has(version)) continue;
      this.retired.delete(version);
      this.pool.unload(version);
    }
  }
}
