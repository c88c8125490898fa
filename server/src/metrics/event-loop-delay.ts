import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** The quantiles exported, as Prometheus summary labels (1: the max). */
export const EVENT_LOOP_DELAY_QUANTILES = [0.5, 0.99, 1] as const;

export interface EventLoopDelaySnapshot {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const NO_DELAY: EventLoopDelaySnapshot = { p50Ms: 0, p99Ms: 0, maxMs: 0 };

/**
 * Event-loop delay (`perf_hooks.monitorEventLoopDelay`) over a sliding window: each quantile is
 * the worse of the last complete window's and the current window's, so a reading covers one to
 * two windows and two scrapers (a Prometheus server, the load test) do not reset each other's
 * view, as prom-client's reset-on-scrape `nodejs_eventloop_lag_*` gauges would.
 */
export class EventLoopDelay {
  private readonly histogram: IntervalHistogram;
  private previous = NO_DELAY;
  private readonly rotation: NodeJS.Timeout;

  constructor(
    windowMs = 10_000,
    private readonly resolutionMs = 10,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
    this.histogram.enable();
    this.rotation = setInterval(() => {
      this.previous = this.current();
      this.histogram.reset();
    }, windowMs);
    this.rotation.unref(); // never keeps the process alive
  }

  /**
   * The current window's delays in milliseconds. The monitor records the time between its timer's
   * ticks; the tick interval itself is not delay.
   */
  private current(): EventLoopDelaySnapshot {
    if (this.histogram.count === 0) return NO_DELAY;
    const delayMs = (ns: number) => Math.max(0, ns / 1e6 - this.resolutionMs);
    return { p50Ms: delayMs(this.histogram.percentile(50)), p99Ms: delayMs(this.histogram.percentile(99)), maxMs: delayMs(this.histogram.max) };
  }

  /** Delays over the last one to two windows, in milliseconds (0 before any sample). */
  snapshot(): EventLoopDelaySnapshot {
    const now = this.current();
    return {
      p50Ms: Math.max(now.p50Ms, this.previous.p50Ms),
      p99Ms: Math.max(now.p99Ms, this.previous.p99Ms),
      maxMs: Math.max(now.maxMs, this.previous.maxMs),
    };
  }

  stop(): void {
    clearInterval(this.rotation);
    this.histogram.disable();
  }
}
