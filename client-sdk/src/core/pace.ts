/**
 * Pace steering on the device (Bonawitz et al. 2019): a trained update waits for the report window
 * the coordinator gave it in `round:configure` (protocol/pace.ts says until when), so that a large
 * round's uploads reach the coordinator at the rate it can fold.
 */
import { delay } from './runtime.js';

/** How often a waiting upload checks whether its job was cancelled (round closed, conditions changed, disconnected). */
const CHECK_EVERY_MS = 250;

/** Waits `ms`, in steps, and stops early (returning false) once `stopped()` says so. */
export async function waitUnlessStopped(ms: number, stopped: () => boolean): Promise<boolean> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0; left = until - Date.now()) {
    if (stopped()) return false;
    await delay(Math.min(left, CHECK_EVERY_MS));
  }
  return !stopped();
}
