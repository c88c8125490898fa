import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Worker } from 'node:worker_threads';
import type { UpdateResult } from '@flock/client-sdk/protocol';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger, runDetached } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { RoundsService } from '../rounds/rounds.service.js';
import { startModuleWorker } from '../worker-thread.js';
import type { IngressAnswer, IngressAreaMessage, IngressEvent, IngressSettings } from './ingress-messages.js';
import { UploadEndpoints, type RoundReceiveArea } from './upload-endpoints.js';

const log = moduleLogger('uploads');

type ReceivedUpload = Extract<IngressEvent, { type: 'upload' }>;

/**
 * The HTTP upload listener (docs/ARCHITECTURE.md, "Uploads over HTTP"): a worker thread
 * (ingress-worker.ts) receives each body into a shared buffer (the round's receive area, which the
 * round engine opens through UploadEndpoints and this service forwards to the worker, else the
 * slot's own); here, on the main thread, the upload is handed to the round engine as a view of that
 * buffer, exactly as a socket.io upload is, and the engine's answer goes back to the device. Off in
 * cluster mode and with FLOCK_UPLOAD_PORT=off.
 */
@Injectable()
export class UploadIngress implements OnApplicationBootstrap, OnApplicationShutdown {
  private worker: Worker | null = null;
  /** Each slot's shared buffer, as the worker last sent it. */
  private readonly buffers: SharedArrayBuffer[] = [];
  private inArea = 0;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly endpoints: UploadEndpoints,
    private readonly rounds: RoundsService,
    private readonly metrics: MetricsService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const listener = this.config.uploads;
    if (!listener) return;
    const settings: IngressSettings = {
      key: this.endpoints.key,
      host: listener.host,
      port: listener.port,
      maxUploadBytes: this.config.maxUploadBytes,
      slots: listener.slots,
      requestTimeoutMs: listener.requestTimeoutMs,
    };
    const worker = startModuleWorker(new URL('./ingress-worker.js', import.meta.url), { workerData: settings, name: 'flock-uploads' });
    const first = await new Promise<IngressEvent>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    if (first.type !== 'listening') {
      await worker.terminate();
      const problem = first.type === 'listenFailed' ? first.message : `unexpected ${first.type}`;
      if (listener.portChosen) throw new Error(`FLOCK_UPLOAD_PORT=${listener.port}: the upload listener cannot listen: ${problem}`);
      log.warn({ port: listener.port, problem }, 'upload listener not started: devices upload over socket.io (set FLOCK_UPLOAD_PORT to choose its port)');
      return;
    }
    this.worker = worker;
    worker.on('message', (event: IngressEvent) => this.onEvent(event));
    worker.on('error', (error) => {
      log.error({ err: error }, 'upload listener failed: devices upload over socket.io from the next round on');
      this.endpoints.closed();
      this.worker = null;
    });
    this.endpoints.listening(first.port, listener.publicUrl, listener.minBytes, { slots: listener.slots, place: (area) => this.placeArea(area) });
    log.info({ port: first.port, url: listener.publicUrl ?? undefined }, 'upload listener up');
  }

  async onApplicationShutdown(): Promise<void> {
    this.endpoints.closed();
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }

  /** HTTP uploads read where the listener wrote them into a round's receive area (measured and folded there), since start. */
  get receivedInArea(): number {
    return this.inArea;
  }

  private placeArea(area: RoundReceiveArea | null): void {
    const message: IngressAreaMessage = { type: 'area', area };
    this.worker?.postMessage(message);
  }

  private onEvent(event: IngressEvent): void {
    if (event.type === 'refused') this.metrics.uploadRequestsTotal.inc({ result: event.reason });
    else if (event.type === 'upload') {
      this.metrics.uploadRequestsTotal.inc({ result: 'received' });
      runDetached(log, 'answering an HTTP upload', this.answer(event));
    }
  }

  private async answer(upload: ReceivedUpload): Promise<void> {
    if (upload.buffer) this.buffers[upload.slot] = upload.buffer;
    let result: UpdateResult;
    try {
      result = await this.resultFor(upload);
    } catch (error) {
      log.error({ err: error, clientId: upload.clientId }, 'an HTTP upload could not be handled');
      result = { accepted: false, reason: 'malformed', message: 'the upload could not be handled' };
    }
    const answer: IngressAnswer = { type: 'answer', id: upload.id, result };
    this.worker?.postMessage(answer);
  }

  /** The upload as the socket.io message it stands for, with its bytes as a view of the slot (valid until answered). */
  private resultFor(upload: ReceivedUpload): Promise<UpdateResult> {
    const { clientId, roundId, meta, arrivedAt } = upload;
    let message: unknown = null;
    try {
      message = JSON.parse(meta);
    } catch {
      // null: refused as malformed by the round engine's schema, counted there
    }
    if (isRecord(message) && message.roundId !== roundId) {
      this.metrics.uploadsTotal.inc({ result: 'rejected', reason: 'not_selected' });
      return Promise.resolve({ accepted: false, reason: 'not_selected', message: `the upload ticket is for round ${roundId}` });
    }
    const data = this.bytesOf(upload);
    const payload = isRecord(message) && isRecord(message.delta) ? { ...message, delta: { ...message.delta, data } } : message;
    return this.rounds.handleUpload(clientId, payload, arrivedAt - performance.timeOrigin, { borrowed: true });
  }

  /**
   * The delta's bytes where the worker wrote them: the slot's region of the round's receive area
   * (a view of the very buffer the aggregator's kernels check for, so they fold it in place), or the
   * slot's own buffer.
   */
  private bytesOf({ slot, length, area: areaRound }: ReceivedUpload): Uint8Array {
    if (areaRound === undefined) return new Uint8Array(this.buffers[slot]!, 0, length);
    const area = this.endpoints.areaOf(areaRound);
    // The round ended while the body arrived, its area closed with it: the round engine refuses an
    // upload to an ended round before reading a value of it, so zeros of the same length stand in.
    if (!area) return new Uint8Array(length);
    this.inArea++;
    return new Uint8Array(area.buffer, area.offsets[slot], length);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
