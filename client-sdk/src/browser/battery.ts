/** Charging state from the Battery Status API (`navigator.getBattery()`, Chromium-based browsers). */
import { ObservableCondition } from '../core/conditions.js';

/** The part of the Battery Status API the detector uses (not in TypeScript's DOM library). */
export interface BatteryManagerLike extends EventTarget {
  readonly charging: boolean;
}
export interface BatteryNavigatorLike {
  getBattery?: () => Promise<BatteryManagerLike>;
}

/**
 * 'yes' while charging, 'no' on battery, 'unknown' where the API is missing (Firefox, Safari) or
 * refused. Follows `chargingchange` events.
 */
export class BatteryChargingDetector extends ObservableCondition {
  private battery: BatteryManagerLike | null = null;
  private disposed = false;
  private readonly onChange = (): void => this.read();
  /** Resolves once the API has answered (or is known to be missing). */
  readonly ready: Promise<void>;

  constructor(options: { navigator?: BatteryNavigatorLike } = {}) {
    super('charging', 'battery-status-api', 'unknown');
    const nav = options.navigator ?? (globalThis.navigator as unknown as BatteryNavigatorLike | undefined);
    this.ready = this.attach(nav);
  }

  private async attach(nav: BatteryNavigatorLike | undefined): Promise<void> {
    if (typeof nav?.getBattery !== 'function') return;
    try {
      const battery = await nav.getBattery();
      if (this.disposed) return;
      this.battery = battery;
      battery.addEventListener('chargingchange', this.onChange);
      this.read();
    } catch {
      // Blocked by a permissions policy: stays 'unknown'.
    }
  }

  private read(): void {
    if (this.battery) this.update(this.battery.charging ? 'yes' : 'no');
  }

  override dispose(): void {
    this.disposed = true;
    this.battery?.removeEventListener('chargingchange', this.onChange);
    this.battery = null;
    super.dispose();
  }
}
