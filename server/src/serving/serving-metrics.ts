import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { MetricsService } from '../metrics/metrics.service.js';

/** The serving module's Prometheus metrics, on the coordinator's registry (`/metrics`). */
@Injectable()
export class ServingMetrics {
  readonly requests: Counter<'status'>;
  readonly latency: Histogram<'status'>;
  readonly batchSize: Histogram;
  readonly logRecords: Counter<'result' | 'reason'>;
  readonly servedVersion: Gauge;
  readonly deviation: Gauge<'signal'>;
  readonly feedbackAccuracy: Gauge;
  readonly actions: Counter<'action' | 'signal' | 'result'>;

  constructor(metrics: MetricsService) {
    const registers = [metrics.registry];
    this.requests = new Counter({
      name: 'flock_inference_requests_total',
      help: 'Inference requests (/v2 infer), by status',
      labelNames: ['status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'flock_inference_latency_seconds',
      help: 'Time from an inference request arriving to its answer, by status',
      labelNames: ['status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'flock_inference_batch_rows',
      help: 'Rows in each batch the inference workers ran (dynamic batching)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    });
    this.logRecords = new Counter({
      name: 'flock_inference_log_records_total',
      help: 'Inference log records written, or dropped (by reason)',
      labelNames: ['result', 'reason'],
      registers,
    });
    this.servedVersion = new Gauge({ name: 'flock_serving_model_version', help: 'The version `global` serves now (0: not started)', registers });
    this.deviation = new Gauge({
      name: 'flock_serving_deviation',
      help: "The served version's deviation from the previous one on live traffic: psi and js of predicted classes, disagreement (shadow mode)",
      labelNames: ['signal'],
      registers,
    });
    this.feedbackAccuracy = new Gauge({ name: 'flock_serving_feedback_accuracy', help: "The served version's accuracy on labelled feedback", registers });
    this.actions = new Counter({
      name: 'flock_serving_actions_total',
      help: 'Actions taken when a served version crossed a deviation threshold, by action, signal and result',
      labelNames: ['action', 'signal', 'result'],
      registers,
    });
  }
}
