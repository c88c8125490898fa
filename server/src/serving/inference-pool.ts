import type { Worker } from 'node:worker_threads';
import { moduleLogger } from '../logging/logger.js';
import type { ModelArtifactsParts } from '../models/tfjs-format.js';
import { startModuleWorker } from '../worker-thread.js';
import type { BatchRunner } from './dynamic-batcher.js';
import type { ModelSignature, WorkerReply, WorkerRequest } from './worker-messages.js';

const log = moduleLogger('serving');

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  /** The batch it runs now, if any (one at a time). */
  running: { id: number; resolve: (outputs: Float32Array[]) => void; reject: (error: Error) => void } | null;
  loads: Map<number, { resolve: (signature: ModelSignature) => void; reject: (error: Error) => void }>;
}

/**
 * Inference worker threads (inference-worker.ts), each holding every loaded version: a version is
 * loaded into all of them before it is served, so any free worker can take any batch. A worker that
 * dies fails its batch and is replaced, with the loaded versions loaded again.
 */
export class InferencePool implements BatchRunner {
  private readonly slots: Slot[] = [];
  /** Loaded versions' parts (kept to reload a replaced worker) and their signatures. */
  private readonly loaded = new Map<number, { parts: ModelArtifactsParts; signature: Promise<ModelSignature> }>();
  private nextId = 1;
  private idleListener: () => void = () => undefined;
  private closed = false;

  constructor(private readonly size: number) {}

  /** Starts the threads; resolves when each has its backend. */
  async start(): Promise<void> {
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
    await Promise.all(this.slots.map((slot) => slot.ready));
  }

  setIdleListener(listener: () => void): void {
    this.idleListener = listener;
  }

  idleWorkers(): number {
    let idle = 0;
    for (const slot of this.slots) if (slot.running === null) idle++;
    return idle;
  }

  loadedVersions(): number[] {
    return [...this.loaded.keys()];
  }

  /** Loads a version into every worker (once; concurrent callers share it). */
  load(version: number, parts: ModelArtifactsParts): Promise<ModelSignature> {
    const known = this.loaded.get(version);
    if (known) return known.signature;
    const signature = Promise.all(this.slots.map((slot) => this.loadInto(slot, version, parts))).then((signatures) => signatures[0]!);
    this.loaded.set(version, { parts, signature });
    signature.catch(() => this.loaded.delete(version));
    return signature;
  }

  unload(version: number): void {
    if (!this.loaded.delete(version)) return;
    for (const slot of this.slots) slot.worker.postMessage({ type: 'unload', version } satisfies WorkerRequest);
  }

  run(version: number, rows: number, input: Float32Array): Promise<Float32Array[]> {
    const slot = this.slots.find((candidate) => candidate.running === null);
    if (!slot || this.closed) return Promise.reject(new Error('no inference worker is free'));
    const id = this.nextId++;
    return new Promise<Float32Array[]>((resolve, reject) => {
      slot.running = { id, resolve, reject };
      const transfer = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength ? [input.buffer as ArrayBuffer] : [];
      slot.worker.postMessage({ type: 'predict', id, version, rows, input } satisfies WorkerRequest, transfer);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
    this.slots.length = 0;
  }

  private loadInto(slot: Slot, version: number, parts: ModelArtifactsParts): Promise<ModelSignature> {
    return slot.ready.then(
      () =>
        new Promise<ModelSignature>((resolve, reject) => {
          slot.loads.set(version, { resolve, reject });
          const request: WorkerRequest = { type: 'load', version, topology: parts.topology, weightSpecs: parts.weightSpecs, weights: parts.weights };
          slot.worker.postMessage(request);
        }),
    );
  }

  private spawn(): Slot {
    const worker = startModuleWorker(new URL('./inference-worker.js', import.meta.url));
    let markReady!: () => void;
    let failStart!: (error: Error) => void;
    const slot: Slot = {
      worker,
      ready: new Promise<void>((resolve, reject) => {
        markReady = resolve;
        failStart = reject;
      }),
      running: null,
      loads: new Map(),
    };
    worker.on('message', (reply: WorkerReply) => this.onReply(slot, reply, markReady));
    worker.on('error', (error) => {
      log.error({ err: error }, 'inference thread failed');
      failStart(error);
    });
    worker.on('exit', (code) => this.onExit(slot, code));
    // Serving alone must not keep the process alive.
    worker.unref();
    return slot;
  }

  private onReply(slot: Slot, reply: WorkerReply, markReady: () => void): void {
    switch (reply.type) {
      case 'ready':
        log.debug({ backend: reply.backend }, 'inference thread ready');
        markReady();
        return;
      case 'loaded':
      case 'load-failed': {
        const pending = slot.loads.get(reply.version);
        slot.loads.delete(reply.version);
        if (reply.type === 'loaded') pending?.resolve(reply.signature);
        else pending?.reject(new Error(`cannot load version ${reply.version}: ${reply.message}`));
        return;
      }
      case 'predicted':
      case 'predict-failed': {
        const running = slot.running;
        if (!running || running.id !== reply.id) return;
        slot.running = null;
        if (reply.type === 'predicted') running.resolve(reply.outputs);
        else running.reject(new Error(reply.message));
        this.idleListener();
        return;
      }
    }
  }

  private onExit(slot: Slot, code: number): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    const error = new Error(`inference thread exited with code ${code}`);
    slot.running?.reject(error);
    for (const pending of slot.loads.values()) pending.reject(error);
    if (this.closed) return;
    log.warn({ code }, 'inference thread exited; starting another');
    const replacement = this.spawn();
    this.slots[index] = replacement;
    for (const [version, { parts }] of this.loaded) this.loadInto(replacement, version, parts).catch(() => undefined);
    replacement.ready.then(() => this.idleListener()).catch(() => undefined);
  }
}
