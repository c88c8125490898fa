/**
 * Idleness in the browser, from two sources that the client combines (any 'no' wins):
 * - InactivityIdleDetector: no input events on the page for N seconds, and page visibility;
 * - IdleDetectionApiDetector: the Idle Detection API (system-wide user idleness, screen lock),
 *   where the browser has it and the user granted the 'idle-detection' permission.
 */
import { ObservableCondition, type ConditionValue } from '../core/conditions.js';
import { DEFAULT_IDLE_AFTER_MS, DEFAULT_WHEN_HIDDEN } from '../core/defaults.js';

const INPUT_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll'] as const;

export interface VisibilityLike extends EventTarget {
  readonly hidden: boolean;
}

export interface InactivityOptions {
  /** No input for this long counts as idle (default 60 s). */
  idleAfterMs?: number;
  /**
   * What a hidden page says about idleness (default 'unknown': the user may be busy in another app;
   * the Idle Detection API, where permitted, or the unknown-policy decides).
   */
  whenHidden?: ConditionValue;
  /** Where input events are observed (default `window`). */
  target?: EventTarget;
  /** Where visibility is read (default `document`). */
  document?: VisibilityLike;
}

/**
 * 'no' while the user interacts with the page (and for `idleAfterMs` after the last input, including
 * right after the page loads), 'yes' once no input event arrived for `idleAfterMs` while the page is
 * visible, `whenHidden` while it is hidden.
 */
export class InactivityIdleDetector extends ObservableCondition {
  private readonly idleAfterMs: number;
  private readonly whenHidden: ConditionValue;
  private readonly target: EventTarget | undefined;
  private readonly visibility: VisibilityLike | undefined;
  private lastInputAt = Date.now();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly onInput = (): void => {
    this.lastInputAt = Date.now();
    this.evaluate();
  };
  private readonly onVisibility = (): void => this.evaluate();

  constructor(options: InactivityOptions = {}) {
    super('idle', 'user-inactivity', 'unknown');
    this.idleAfterMs = options.idleAfterMs ?? DEFAULT_IDLE_AFTER_MS;
    this.whenHidden = options.whenHidden ?? DEFAULT_WHEN_HIDDEN;
    this.target = options.target ?? (typeof window === 'undefined' ? undefined : window);
    this.visibility = options.document ?? (typeof document === 'undefined' ? undefined : document);
    if (!this.target) return; // not in a browser: stays 'unknown'
    for (const event of INPUT_EVENTS) this.target.addEventListener(event, this.onInput, { capture: true, passive: true });
    this.visibility?.addEventListener('visibilitychange', this.onVisibility);
    this.evaluate();
  }

  private evaluate(): void {
    if (this.visibility?.hidden) {
      this.clearTimer();
      this.update(this.whenHidden);
      return;
    }
    const idleFor = Date.now() - this.lastInputAt;
    if (idleFor >= this.idleAfterMs) {
      this.clearTimer();
      this.update('yes');
      return;
    }
    this.update('no');
    // One timer at a time; input events only move lastInputAt (pointermove fires very often).
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.evaluate();
    }, this.idleAfterMs - idleFor);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  override dispose(): void {
    this.clearTimer();
    for (const event of INPUT_EVENTS) this.target?.removeEventListener(event, this.onInput, { capture: true });
    this.visibility?.removeEventListener('visibilitychange', this.onVisibility);
    super.dispose();
  }
}

/** The Idle Detection API's detector (not in TypeScript's DOM library). */
export interface IdleDetectorLike extends EventTarget {
  readonly userState: 'active' | 'idle' | null;
  readonly screenState: 'locked' | 'unlocked' | null;
  start(options: { threshold: number; signal?: AbortSignal }): Promise<void>;
}
export interface IdleDetectorConstructor {
  new (): IdleDetectorLike;
  requestPermission(): Promise<'granted' | 'denied'>;
}
export interface PermissionStatusLike {
  readonly state: string;
  addEventListener?(type: 'change', listener: () => void): void;
  removeEventListener?(type: 'change', listener: () => void): void;
}
export interface PermissionsLike {
  query(descriptor: { name: string }): Promise<PermissionStatusLike>;
}

export interface IdleDetectionApiOptions {
  /** Idle threshold (the API's minimum is 60 s). */
  thresholdMs?: number;
  /** Default: `globalThis.IdleDetector`. */
  IdleDetector?: IdleDetectorConstructor;
  /** Default: `navigator.permissions`. */
  permissions?: PermissionsLike;
}

/** Maps the API's state: idle user or locked screen = idle; active user = busy. */
export function idleFromIdleDetector(detector: Pick<IdleDetectorLike, 'userState' | 'screenState'>): ConditionValue {
  if (detector.screenState === 'locked' || detector.userState === 'idle') return 'yes';
  if (detector.userState === 'active') return 'no';
  return 'unknown';
}

/**
 * System-wide idleness via the Idle Detection API, only where permitted: it never prompts (a prompt
 * needs a user gesture; call `IdleDetectionApiDetector.requestPermission()` from a click handler and
 * the detector starts when the permission changes to granted). 'unknown' where missing or not
 * permitted.
 */
export class IdleDetectionApiDetector extends ObservableCondition {
  private readonly thresholdMs: number;
  private readonly constructorRef: IdleDetectorConstructor | undefined;
  private readonly permissions: PermissionsLike | undefined;
  private readonly abort = new AbortController();
  private detector: IdleDetectorLike | null = null;
  private permission: PermissionStatusLike | null = null;
  private readonly onPermissionChange = (): void => {
    if (this.permission?.state === 'granted') this.ready = this.start(); // start() never rejects
  };
  private readonly onChange = (): void => {
    if (this.detector) this.update(idleFromIdleDetector(this.detector));
  };
  /** Resolves when started (or known to be unavailable). */
  ready: Promise<void>;

  constructor(options: IdleDetectionApiOptions = {}) {
    super('idle', 'idle-detection-api', 'unknown');
    this.thresholdMs = Math.max(60_000, options.thresholdMs ?? DEFAULT_IDLE_AFTER_MS);
    this.constructorRef = options.IdleDetector ?? (globalThis as unknown as { IdleDetector?: IdleDetectorConstructor }).IdleDetector;
    this.permissions = options.permissions ?? (typeof navigator === 'undefined' ? undefined : navigator.permissions);
    this.ready = this.start();
  }

  /** Asks for the permission; must run inside a user gesture (click). */
  static async requestPermission(IdleDetector?: IdleDetectorConstructor): Promise<boolean> {
    const ctor = IdleDetector ?? (globalThis as unknown as { IdleDetector?: IdleDetectorConstructor }).IdleDetector;
    if (!ctor) return false;
    try {
      return (await ctor.requestPermission()) === 'granted';
    } catch {
      return false;
    }
  }

  /** Starts observing if the API exists and the permission is granted; safe to call again after a grant. */
  async start(): Promise<void> {
    if (this.detector || !this.constructorRef || this.abort.signal.aborted) return;
    try {
      const permission = await this.permissions?.query({ name: 'idle-detection' });
      if (permission && permission.state !== 'granted') {
        // Starts by itself once the user grants it (e.g. via requestPermission() in a click handler).
        if (!this.permission) {
          this.permission = permission;
          permission.addEventListener?.('change', this.onPermissionChange);
        }
        return;
      }
      const detector = new this.constructorRef();
      detector.addEventListener('change', this.onChange);
      await detector.start({ threshold: this.thresholdMs, signal: this.abort.signal });
      this.detector = detector;
      this.onChange();
    } catch {
      // Not permitted, or not allowed in this frame: stays 'unknown'.
    }
  }

  override dispose(): void {
    this.abort.abort();
    this.permission?.removeEventListener?.('change', this.onPermissionChange);
    this.permission = null;
    this.detector?.removeEventListener('change', this.onChange);
    this.detector = null;
    super.dispose();
  }
}
