/**
 * What a report window (`round:configure`'s `reportWindow`, pace steering) asks of a device, in
 * one place for the SDK, raw protocol devices and the load test.
 */
import type { ReportWindow } from './round-messages.js';

/**
 * How long to wait, from `now` (epoch ms), before uploading: until a random moment of the window
 * (`random` in [0, 1)), or 0 when there is no window or the device is already inside or past it
 * (a late device uploads at once: its deadline, not its window, is what the coordinator enforces).
 */
export function uploadDelayMs(window: ReportWindow | undefined, now: number, random: number): number {
  if (!window || now >= window.notBefore) return 0;
  return window.notBefore - now + random * (window.notAfter - window.notBefore);
}
