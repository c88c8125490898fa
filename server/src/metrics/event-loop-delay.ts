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
 * Event-loop delay (`perf_hooks.monitorEventLoopDelay`) over the last complete window (10 s by
 * default): a reading is exact for that window, whoever reads it and however often, where
 * prom-client's `nodejs_eventloop_lag_*` gauges reset at every scrape (two scrapers see each
 * other's leftovers) and a window just begun would weigh its few samples as much as a full one.
 */
export class EventLoopDelay {
  private readonly histogram: IntervalHistogram;
  private last = NO_DELAY;
  private readonly rotation: NodeJS.Timeout;

  constructor(
    readonly windowMs = 10_000,
    private readonly resolutionMs = 10,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
    this.histogram.enable();
    this.rotation = setInterval(() => {
      this.last = this.read();
      this.histogram.reset();
    }, windowMs);
    this.rotation.unref(); // never keeps the process alive
  }

  /**
   * The window's delays in milliseconds. The monitor records the time between its timer's ticks;
   * the tick interval itself is not delay.
   */
  private read(): EventLoopDelaySnapshot {
    if (this.histogram.count === 0) return NO_DELAY;
    const delayMs = (ns: number) => Math.max(0, ns / 1e6 - this.resolutionMs);
    return { p50Ms: delayMs(this.histogram.percentile(50)), p99Ms: delayMs(this.histogram.percentile(99)), maxMs: delayMs(this.histogram.max) };
  }

  /** Delays of the last complete window, in milliseconds (0 until the first window completes). */
  snapshot(): EventLoopDelaySnapshot {
    return this.last;
  }

  stop(): void {
    clearInterval(this.rotation);
    this.histogram.disable();
  }
}
