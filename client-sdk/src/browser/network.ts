/** Whether the network is unmetered, from the Network Information API (`navigator.connection`). */
import { ObservableCondition, type ConditionValue } from '../core/conditions.js';

/** The part of the Network Information API the detector uses (not in TypeScript's DOM library). */
export interface NetworkInformationLike extends EventTarget {
  /** 'wifi' | 'ethernet' | 'cellular' | 'bluetooth' | 'wimax' | 'none' | 'other' | 'mixed' | 'unknown' (Chromium on Android/ChromeOS). */
  readonly type?: string;
  readonly saveData?: boolean;
  /** '4g' etc.: a speed estimate that says nothing about metering. */
  readonly effectiveType?: string;
}
export interface ConnectionNavigatorLike {
  connection?: NetworkInformationLike;
}

const UNMETERED_TYPES = new Set(['wifi', 'ethernet']);
const METERED_TYPES = new Set(['cellular', 'bluetooth', 'wimax', 'none']);

/**
 * The rule: data saver on = metered ('no'); type wifi/ethernet = 'yes'; cellular (and bluetooth
 * tethering, wimax, offline) = 'no'; no type (desktop browsers expose only `effectiveType`), an
 * 'unknown'/'other'/'mixed' type, or no API at all = 'unknown'.
 */
export function unmeteredFromConnection(connection: NetworkInformationLike | undefined): ConditionValue {
  if (!connection) return 'unknown';
  if (connection.saveData === true) return 'no';
  const type = connection.type;
  if (type && UNMETERED_TYPES.has(type)) return 'yes';
  if (type && METERED_TYPES.has(type)) return 'no';
  return 'unknown';
}

export class NetworkUnmeteredDetector extends ObservableCondition {
  private readonly connection: NetworkInformationLike | undefined;
  private readonly onChange = (): void => this.update(unmeteredFromConnection(this.connection));

  constructor(options: { navigator?: ConnectionNavigatorLike } = {}) {
    super('unmetered', 'network-information-api', 'unknown');
    const nav = options.navigator ?? (globalThis.navigator as unknown as ConnectionNavigatorLike | undefined);
    this.connection = nav?.connection;
    this.connection?.addEventListener('change', this.onChange);
    this.onChange();
  }

  override dispose(): void {
    this.connection?.removeEventListener('change', this.onChange);
    super.dispose();
  }
}
