import { hash } from 'node:crypto';
import { HttpException, Inject, Injectable, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { SERVED_DATATYPE, SERVED_MODEL_NAME, SERVED_PLATFORM, type InferenceStatus, type V2ModelMetadata, type ServingStatus } from '../contract/index.js';
import { ModelsService } from '../models/models.service.js';
import { summarizeReports } from '../rounds/evaluation-summary.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import { QueueFullError, type BatchResult } from './dynamic-batcher.js';
import {
  decodeInferBody,
  encodeInferResponse,
  InferHeaderCache,
  InferRequestError,
  prepareInput,
  selectOutputs,
  wantsBinaryOutput,
  type EncodedResponse,
  type PreparedInput,
} from './infer-codec.js';
import { InferenceLogService } from './inference-log.service.js';
import { newRequestId } from './request-id.js';
import { ServedModels } from './served-models.js';
import { ServingMetrics } from './serving-metrics.js';
import { ServingMonitor } from './serving-monitor.js';
import { argmaxRows } from './version-stats.js';

/** Answered requests whose latency the status's percentiles are taken over. */
const LATENCY_WINDOW = 1024;

export interface InferOutcome {
  requestId: string;
  version: number;
  response: EncodedResponse;
}

/** What one request left for its log record and the monitor. */
interface Trace {
  requestId: string;
  /** The model name asked for (cut to 64 characters). */
  modelName: string;
  started: number;
  version: number | null;
  rows: number;
  shape: number[];
  /** Taken before the input is handed (transferred) to a worker. */
  digest: string | null;
  input: Uint8Array | null;
  result: BatchResult | null;
  /** Its record was made (a failure after that must not make a second). */
  finished: boolean;
}

/**
 * Serves the global model over the Open Inference Protocol: resolves `global` (the current version,
 * or a pinned one), checks the request against the model's signature, queues its rows for dynamic
 * batching on the worker threads, answers with the version that computed it, and leaves one log
 * record per request (answered or refused) and the predictions for the monitor.
 */
@Injectable()
export class ServingService {
  private requests = 0;
  /** Latencies (ms) of the last LATENCY_WINDOW answered requests, a ring. */
  private readonly latencies = new Float64Array(LATENCY_WINDOW);
  private answered = 0;
  private readonly headers = new InferHeaderCache();

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly served: ServedModels,
    private readonly models: ModelsService,
    private readonly log: InferenceLogService,
    private readonly monitor: ServingMonitor,
    private readonly metrics: ServingMetrics,
    @Inject(STORAGE) private readonly storage: Storage,
  ) {}

  /** Readiness: starts the workers on the first call. */
  ready(): boolean {
    void this.served.warmUp().catch(() => undefined);
    return this.served.ready;
  }

  async metadata(name: string, version: number | null): Promise<V2ModelMetadata> {
    assertModelName(name);
    const resolved = version ?? (await this.currentVersion());
    const signature = await this.served.signature(resolved);
    const versions = (await this.models.list()).map((meta) => String(meta.version));
    const tensor = ({ name: tensorName, shape }: { name: string; shape: number[] }) => ({ name: tensorName, datatype: SERVED_DATATYPE, shape });
    return { name: SERVED_MODEL_NAME, versions, platform: SERVED_PLATFORM, inputs: signature.inputs.map(tensor), outputs: signature.outputs.map(tensor) };
  }

  async infer(name: string, pinned: number | null, body: unknown, headerLength: number | undefined): Promise<InferOutcome> {
    const trace: Trace = {
      requestId: newRequestId(),
      modelName: name.slice(0, 64),
      started: performance.now(),
      version: null,
      rows: 0,
      shape: [],
      digest: null,
      input: null,
      result: null,
      finished: false,
    };
    this.requests++;
    try {
      assertModelName(name);
      const decoded = decodeInferBody(body, headerLength, this.headers);
      const version = pinned ?? (await this.currentVersion());
      trace.version = version;
      const signature = await this.served.signature(version);
      const prepared = prepareInput(decoded, signature);
      const bytes = new Uint8Array(prepared.input.buffer, prepared.input.byteOffset, prepared.input.byteLength);
      Object.assign(trace, {
        rows: prepared.rows,
        shape: prepared.shape,
        digest: this.log.enabled ? hash('sha256', bytes, 'hex').slice(0, 32) : null,
        input: this.log.enabled && this.config.serving.logInputs ? bytes.slice() : null,
      });
      const selected = selectOutputs(decoded.request, signature);
      const shadow = pinned === null ? this.monitor.shadowVersion() : null;
      const shadowInput = shadow !== null ? prepared.input.slice() : null;
      const result = await this.submit(version, prepared);
      trace.result = result;
      if (shadow !== null && shadowInput !== null) this.runShadow(shadow, version, prepared.rows, shadowInput, result.outputs[0]!);
      const response = encodeInferResponse(
        {
          model_name: SERVED_MODEL_NAME,
          model_version: String(version),
          id: decoded.request.id ?? trace.requestId,
          parameters: { request_id: trace.requestId },
        },
        signature,
        selected,
        prepared.rows,
        result.outputs,
        wantsBinaryOutput(decoded.request),
      );
      const committed = this.finish(trace, 'ok', null);
      // Durable log: the answer leaves only once its record is committed.
      if (committed && !(await committed)) throw new ServiceUnavailableException('the inference log could not record this request');
      return { requestId: trace.requestId, version, response };
    } catch (error) {
      if (trace.finished) throw error;
      const [status, httpError] = classify(error);
      // Refusals are logged as durably as answers.
      await this.finish(trace, status, httpError.message);
      throw httpError;
    }
  }

  async status(): Promise<ServingStatus> {
    const { maxBatchSize, maxQueueDelayMs, workers } = this.config.serving;
    const monitor = this.monitor.status();
    const samples = Math.min(this.answered, LATENCY_WINDOW);
    const sorted = this.latencies.slice(0, samples).sort();
    const at = (q: number): number => sorted[Math.min(samples - 1, Math.floor(q * samples))]!;
    return {
      currentVersion: this.served.currentVersion,
      requests: this.requests,
      latency: samples === 0 ? null : { p50Ms: at(0.5), p99Ms: at(0.99), samples },
      batching: { maxBatchSize, maxQueueDelayMs, workers },
      ...monitor,
      versions: await Promise.all(monitor.versions.map(async (stats) => ({ ...stats, ...(await this.deviceEvaluations(stats.version)) }))),
    };
  }

  /** Devices' local evaluations of a version (stored as they arrive), summarized as the rounds summarize them (capped weights). */
  private async deviceEvaluations(version: number): Promise<{ deviceEvaluations: number; deviceAccuracy: number | null }> {
    const summary = summarizeReports(await this.storage.listEvaluationReports(version));
    return { deviceEvaluations: summary?.reports ?? 0, deviceAccuracy: summary?.globalAccuracy ?? null };
  }

  private async currentVersion(): Promise<number> {
    await this.served.warmUp();
    const version = this.served.currentVersion;
    if (version === null) throw new ServiceUnavailableException('no global model version is loaded yet');
    return version;
  }

  private async submit(version: number, prepared: PreparedInput): Promise<BatchResult> {
    this.served.acquire(version);
    try {
      // The input is transferred to the worker when it runs alone: log what is needed first.
      const result = await this.served.batcher.submit(version, prepared.rows, prepared.input);
      this.metrics.batchSize.observe(result.batchSize);
      return result;
    } finally {
      this.served.release(version);
    }
  }

  /** Shadow mode: the same rows on the previous version, compared by top class, off the answer's path. */
  private runShadow(shadow: number, version: number, rows: number, input: Float32Array, output: Float32Array): void {
    void this.served
      .signature(shadow)
      .then(() => this.submit(shadow, { rows, shape: [], input }))
      .then((result) => {
        const mine = argmaxRows(output, rows).classes;
        const theirs = argmaxRows(result.outputs[0]!, rows).classes;
        let agreed = 0;
        for (let i = 0; i < rows; i++) if (mine[i] === theirs[i]) agreed++;
        this.monitor.observeShadow(version, agreed, rows);
      })
      .catch(() => undefined);
  }

  /** Metrics, monitor and the one log record of a request; in durable mode, the promise of its commit. */
  private finish(trace: Trace, status: InferenceStatus, error: string | null): Promise<boolean> | null {
    trace.finished = true;
    const latencyMs = performance.now() - trace.started;
    this.metrics.requests.inc({ status });
    this.metrics.latency.observe({ status }, latencyMs / 1000);
    if (status === 'ok') this.latencies[this.answered++ % LATENCY_WINDOW] = latencyMs;
    const { result } = trace;
    let topClass: number | null = null;
    let confidence: number | null = null;
    if (result && result.outputs[0] && trace.version !== null) {
      const { classes, confidences } = argmaxRows(result.outputs[0], trace.rows);
      this.monitor.observe(trace.version, classes, confidences);
      topClass = classes[0]!;
      const top = confidences[0]!;
      confidence = top >= 0 && top <= 1 ? top : null;
    }
    if (!this.log.enabled) return null;
    return this.log.record({
      requestId: trace.requestId,
      at: new Date().toISOString(),
      modelName: trace.modelName,
      modelVersion: trace.version,
      status,
      latencyMs,
      batchSize: result?.batchSize ?? 0,
      rows: trace.rows,
      inputShape: trace.shape,
      inputDigest: trace.digest,
      topClass,
      confidence,
      error,
      input: trace.input,
    });
  }
}

function assertModelName(name: string): void {
  if (name !== SERVED_MODEL_NAME) throw new NotFoundException(`unknown model "${name}"; this coordinator serves "${SERVED_MODEL_NAME}"`);
}

/** The log status and the HTTP error of a failure. */
function classify(error: unknown): [InferenceStatus, HttpException] {
  if (error instanceof InferRequestError) return ['bad_request', new HttpException(error.message, 400)];
  if (error instanceof QueueFullError) return ['unavailable', new ServiceUnavailableException(`too many requests waiting (${error.message}); retry later`)];
  if (error instanceof HttpException) {
    const status = error.getStatus();
    return [status === 404 ? 'not_found' : status === 503 ? 'unavailable' : status < 500 ? 'bad_request' : 'failed', error];
  }
  return ['failed', new HttpException(`inference failed: ${error instanceof Error ? error.message : String(error)}`, 500)];
}
