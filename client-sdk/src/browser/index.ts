/** Browser adapter: condition detectors over web APIs, IndexedDB persistence, backend selection. */
export { initBrowserBackend, type BrowserBackendName, type BrowserBackendOptions } from './backend.js';
export { BatteryChargingDetector, type BatteryManagerLike, type BatteryNavigatorLike } from './battery.js';
export { browserConditions, type BrowserConditionsOptions } from './conditions.js';
export { DEFAULT_DATABASE_NAME, DEFAULT_IDLE_AFTER_MS } from '../core/defaults.js';
export { IndexedDbModelStore } from './idb-store.js';
export {
  IdleDetectionApiDetector,
  idleFromIdleDetector,
  InactivityIdleDetector,
  type IdleDetectionApiOptions,
  type IdleDetectorConstructor,
  type IdleDetectorLike,
  type InactivityOptions,
  type PermissionStatusLike,
  type PermissionsLike,
  type VisibilityLike,
} from './idle.js';
export { NetworkUnmeteredDetector, unmeteredFromConnection, type ConnectionNavigatorLike, type NetworkInformationLike } from './network.js';
