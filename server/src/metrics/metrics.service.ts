import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PrivacyAccount } from '../contract/index.js';
import { epsilonAt } from '../privacy/ledger.js';
import { EVENT_LOOP_DELAY_QUANTILES, EventLoopDelay } from './event-loop-delay.js';

/** prom-client's own names already start with process_ / nodejs_. */
const DEFAULT_METRICS_PREFIX = 'flock_';
/**
 * prom-client default metrics whose collection costs O(sockets) on every scrape: with 10,000
 * devices connected, listing the active handles and resources and reading /proc/self/fd held
 * the event loop for about 200 ms per scrape (a CPU profile of `pnpm loadtest`).
 * `flock_connected_clients` counts the devices' sockets instead.
 */
const COSTLY_DEFAULT_METRICS = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_requests',
  'nodejs_active_requests_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'process_open_fds',
];

/**
 * Prometheus metrics of one coordinator. Each instance has its own registry (not prom-client's
 * global one) so several coordinators can run in one process, as the integration tests do.
 */
@Injectable()
export class MetricsService implements OnApplicationShutdown {
  readonly registry = new Registry();
  /** Read by the round engine's pace and by `/metrics`. */
  readonly eventLoopDelay = new EventLoopDelay();

  readonly roundsTotal = new Counter({
    name: 'flock_rounds_total',
    help: 'Rounds that ended, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly uploadsTotal = new Counter({
    name: 'flock_uploads_total',
    help: 'Client update uploads, by result and rejection reason',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly uploadRequestsTotal = new Counter({
    name: 'flock_upload_requests_total',
    help: 'HTTP upload requests: received (handed to the round engine, which counts them in flock_uploads_total) or refused by the upload listener (unauthorized, too_large, malformed, incomplete, busy, not_found)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly uploadBytesTotal = new Counter({
    name: 'flock_upload_bytes_total',
    help: 'Bytes of weight data received in uploads',
    registers: [this.registry],
  });
  readonly downloadBytesTotal = new Counter({
    name: 'flock_download_bytes_total',
    help: 'Bytes of weight data sent for model:fetch, whole models (full) or int8 deltas from a version the device holds (delta)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly updatesClampedTotal = new Counter({
    name: 'flock_updates_clamped_total',
    help: "Accepted updates whose influence was bounded: numExamples clamped to the plan's cap (what=examples), delta scaled down to the L2 bound (what=norm)",
    labelNames: ['what'] as const,
    registers: [this.registry],
  });
  readonly updateBound = new Gauge({
    name: 'flock_update_bound',
    help: 'The adaptive L2 bound on device updates that the next round applies (0 until the first round sets it)',
    registers: [this.registry],
  });
  readonly commitsRefusedTotal = new Counter({
    name: 'flock_commits_refused_total',
    help: 'Round aggregates refused before commit (non-finite weights, change too large), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly droppedTotal = new Counter({
    name: 'flock_dropped_clients_total',
    help: 'Selected clients that left a round before uploading, by cause',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly secAggMessagesTotal = new Counter({
    name: 'flock_secagg_messages_total',
    help: "Devices' secure-aggregation messages (secagg:*), by event, result and refusal reason",
    labelNames: ['event', 'result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly evaluationReportsTotal = new Counter({
    name: 'flock_evaluation_reports_total',
    help: "Devices' local evaluation reports (model:evaluation), by result and refusal reason",
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly connectionsRefusedTotal = new Counter({
    name: 'flock_connections_refused_total',
    help: 'Socket connections refused at the handshake, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly socketEventsDroppedTotal = new Counter({
    name: 'flock_socket_events_dropped_total',
    help: 'Socket events dropped before any handler ran, by namespace (devices, operators), event class and reason (rate_limited, unknown_event)',
    labelNames: ['namespace', 'event', 'reason'] as const,
    registers: [this.registry],
  });
  readonly abusiveSocketsTotal = new Counter({
    name: 'flock_sockets_disconnected_total',
    help: 'Sockets the coordinator disconnected for abuse, by namespace and reason (event_flood: kept sending past its rate limits)',
    labelNames: ['namespace', 'reason'] as const,
    registers: [this.registry],
  });
  readonly connectedClients = new Gauge({
    name: 'flock_connected_clients',
    help: 'Client devices connected now',
    registers: [this.registry],
  });
  readonly eligibleClients = new Gauge({
    name: 'flock_eligible_clients',
    help: 'Connected devices that report being idle, charging and on an unmetered network',
    registers: [this.registry],
  });
  readonly modelVersion = new Gauge({
    name: 'flock_model_version',
    help: 'Current global model version',
    registers: [this.registry],
  });
  readonly dpEpsilonSpent = new Gauge({
    name: 'flock_dp_epsilon_spent',
    help: 'ε (at FLOCK_DP_DELTA) of every differentially private round committed so far: the privacy ledger (docs/PRIVACY.md)',
    registers: [this.registry],
  });
  readonly dpRounds = new Gauge({
    name: 'flock_dp_rounds',
    help: 'Differentially private rounds committed so far (the privacy ledger)',
    registers: [this.registry],
  });
  readonly dpEpsilonBudget = new Gauge({
    name: 'flock_dp_epsilon_budget',
    help: 'FLOCK_DP_EPSILON_BUDGET: the most ε all DP rounds together may spend (absent: no budget)',
    registers: [this.registry],
  });
  readonly modelTestAccuracy = new Gauge({
    name: 'flock_model_test_accuracy',
    help: "Test-set accuracy of the newest global version whose accuracy on the coordinator's test set (FLOCK_TEST_SET) is known",
    registers: [this.registry],
  });
  readonly aggregationSeconds = new Histogram({
    name: 'flock_aggregation_seconds',
    help: 'Time to fold one update into the running aggregate, and to finalize a round (phase label)',
    labelNames: ['phase'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly roundDurationSeconds = new Histogram({
    name: 'flock_round_duration_seconds',
    help: 'Wall time of rounds from start to end',
    labelNames: ['outcome'] as const,
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });

  readonly eventLoopDelaySeconds = new Gauge({
    name: 'flock_event_loop_delay_seconds',
    help: 'Event-loop delay over the last complete 10 s window (perf_hooks.monitorEventLoopDelay, 10 ms resolution), by quantile (1: the max); unlike flock_nodejs_eventloop_lag_*, not reset by a scrape',
    labelNames: ['quantile'] as const,
    registers: [this.registry],
    collect: () => {
      const { p50Ms, p99Ms, maxMs } = this.eventLoopDelay.snapshot();
      const byQuantile = { 0.5: p50Ms, 0.99: p99Ms, 1: maxMs };
      for (const quantile of EVENT_LOOP_DELAY_QUANTILES) this.eventLoopDelaySeconds.set({ quantile: String(quantile) }, byQuantile[quantile] / 1000);
    },
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: DEFAULT_METRICS_PREFIX });
    for (const name of COSTLY_DEFAULT_METRICS) this.registry.removeSingleMetric(DEFAULT_METRICS_PREFIX + name);
  }

  /** An upload folded into an aggregate (in one process, or into a cluster process's partial). */
  /** The privacy ledger as of the newest version. */
  recordPrivacy(account: PrivacyAccount, delta: number): void {
    this.dpEpsilonSpent.set(epsilonAt(account, delta));
    this.dpRounds.set(account.dpRounds);
  }

  countFoldedUpload(foldSeconds: number, bounded: { clipped: boolean; clamped: boolean }): void {
    this.aggregationSeconds.observe({ phase: 'fold' }, foldSeconds);
    this.uploadsTotal.inc({ result: 'accepted', reason: '' });
    if (bounded.clipped) this.updatesClampedTotal.inc({ what: 'norm' });
    if (bounded.clamped) this.updatesClampedTotal.inc({ what: 'examples' });
  }

  onApplicationShutdown(): void {
    this.eventLoopDelay.stop();
  }
}
