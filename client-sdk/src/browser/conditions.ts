/** The browser's default condition detectors. */
import type { ConditionDetector, ConditionValue } from '../core/conditions.js';
import { DEFAULT_USE_IDLE_DETECTION_API } from '../core/defaults.js';
import { BatteryChargingDetector } from './battery.js';
import { IdleDetectionApiDetector, InactivityIdleDetector } from './idle.js';
import { NetworkUnmeteredDetector } from './network.js';

export interface BrowserConditionsOptions {
  /** No input on the page for this long = idle (default 60 s). */
  idleAfterMs?: number;
  /** What a hidden page means for idleness (default 'unknown'). */
  whenHidden?: ConditionValue;
  /** Also use the Idle Detection API where permitted (default true). */
  idleDetectionApi?: boolean;
}

/**
 * Battery Status API (charging), Network Information API (unmetered), page inactivity and
 * visibility (idle) and, where permitted, the Idle Detection API (idle). Missing APIs answer
 * 'unknown'; the client's `unknownConditions` policy decides what that means.
 */
export function browserConditions(options: BrowserConditionsOptions = {}): ConditionDetector[] {
  const detectors: ConditionDetector[] = [
    new BatteryChargingDetector(),
    new NetworkUnmeteredDetector(),
    new InactivityIdleDetector({
      ...(options.idleAfterMs !== undefined ? { idleAfterMs: options.idleAfterMs } : {}),
      ...(options.whenHidden !== undefined ? { whenHidden: options.whenHidden } : {}),
    }),
  ];
  if (options.idleDetectionApi ?? DEFAULT_USE_IDLE_DETECTION_API) {
    detectors.push(new IdleDetectionApiDetector(options.idleAfterMs !== undefined ? { thresholdMs: options.idleAfterMs } : {}));
  }
  return detectors;
}
