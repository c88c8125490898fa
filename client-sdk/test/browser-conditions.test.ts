/**
 * The browser detectors against stand-ins for the web APIs they read (Node has no Battery Status,
 * Network Information or Idle Detection API). The stand-ins are plain EventTargets with the
 * documented properties and events; the detectors under test are the real ones.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BatteryChargingDetector,
  browserConditions,
  IdleDetectionApiDetector,
  idleFromIdleDetector,
  InactivityIdleDetector,
  NetworkUnmeteredDetector,
  unmeteredFromConnection,
  type IdleDetectorConstructor,
} from '../src/browser/index.js';
import { ConditionMonitor, type ConditionValue } from '../src/index.js';

class FakeBattery extends EventTarget {
  constructor(public charging: boolean) {
    super();
  }
  plug(charging: boolean): void {
    this.charging = charging;
    this.dispatchEvent(new Event('chargingchange'));
  }
}

class FakeConnection extends EventTarget {
  constructor(
    public type?: string,
    public saveData?: boolean,
    public effectiveType?: string,
  ) {
    super();
  }
  change(patch: Partial<Pick<FakeConnection, 'type' | 'saveData'>>): void {
    Object.assign(this, patch);
    this.dispatchEvent(new Event('change'));
  }
}

class FakeDocument extends EventTarget {
  hidden = false;
  setHidden(hidden: boolean): void {
    this.hidden = hidden;
    this.dispatchEvent(new Event('visibilitychange'));
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('BatteryChargingDetector (Battery Status API)', () => {
  it('follows charging and chargingchange', async () => {
    const battery = new FakeBattery(true);
    const detector = new BatteryChargingDetector({ navigator: { getBattery: async () => battery } });
    expect(detector.current()).toBe('unknown'); // until the promise resolves
    await detector.ready;
    expect(detector.current()).toBe('yes');
    const seen: ConditionValue[] = [];
    detector.subscribe((value) => seen.push(value));
    battery.plug(false);
    battery.plug(true);
    expect(seen).toEqual(['no', 'yes']);
    detector.dispose();
    battery.plug(false);
    expect(seen).toEqual(['no', 'yes']);
  });

  it("answers 'unknown' without the API or when it is refused", async () => {
    const missing = new BatteryChargingDetector({ navigator: {} });
    await missing.ready;
    expect(missing.current()).toBe('unknown');
    const refused = new BatteryChargingDetector({ navigator: { getBattery: () => Promise.reject(new Error('NotAllowedError')) } });
    await refused.ready;
    expect(refused.current()).toBe('unknown');
    const noNavigator = new BatteryChargingDetector(); // Node: navigator has no getBattery
    await noNavigator.ready;
    expect(noNavigator.current()).toBe('unknown');
  });
});

describe('NetworkUnmeteredDetector (Network Information API)', () => {
  it.each([
    [{ type: 'wifi' }, 'yes'],
    [{ type: 'ethernet' }, 'yes'],
    [{ type: 'cellular' }, 'no'],
    [{ type: 'bluetooth' }, 'no'],
    [{ type: 'none' }, 'no'],
    [{ type: 'wifi', saveData: true }, 'no'],
    [{ type: 'ethernet', saveData: true }, 'no'],
    [{ type: 'unknown' }, 'unknown'],
    [{ type: 'other' }, 'unknown'],
    [{ effectiveType: '4g' }, 'unknown'], // desktop Chromium: only effectiveType
    [{ effectiveType: '4g', saveData: true }, 'no'],
  ] as const)('%o -> %s', (connection, expected) => {
    expect(unmeteredFromConnection(connection as never)).toBe(expected);
  });

  it("answers 'unknown' without the API and follows change events", () => {
    expect(new NetworkUnmeteredDetector({ navigator: {} }).current()).toBe('unknown');
    const connection = new FakeConnection('wifi');
    const detector = new NetworkUnmeteredDetector({ navigator: { connection } });
    expect(detector.current()).toBe('yes');
    connection.change({ type: 'cellular' });
    expect(detector.current()).toBe('no');
    connection.change({ type: 'wifi', saveData: true });
    expect(detector.current()).toBe('no');
    connection.change({ saveData: false });
    expect(detector.current()).toBe('yes');
    detector.dispose();
  });
});

describe('InactivityIdleDetector (input events + page visibility)', () => {
  it("is busy after input, idle after N seconds without input, and 'whenHidden' while hidden", () => {
    vi.useFakeTimers();
    const window = new EventTarget();
    const document = new FakeDocument();
    const detector = new InactivityIdleDetector({ idleAfterMs: 1000, target: window, document });
    expect(detector.current()).toBe('no'); // the user just opened the page
    vi.advanceTimersByTime(999);
    expect(detector.current()).toBe('no');
    vi.advanceTimersByTime(1);
    expect(detector.current()).toBe('yes');

    window.dispatchEvent(new Event('keydown'));
    expect(detector.current()).toBe('no');
    vi.advanceTimersByTime(600);
    window.dispatchEvent(new Event('pointermove')); // input moves the deadline
    vi.advanceTimersByTime(600);
    expect(detector.current()).toBe('no');
    vi.advanceTimersByTime(400);
    expect(detector.current()).toBe('yes');

    document.setHidden(true);
    expect(detector.current()).toBe('unknown'); // default: hidden says nothing about the device
    document.setHidden(false);
    expect(detector.current()).toBe('yes');
    detector.dispose();
    window.dispatchEvent(new Event('keydown'));
    expect(detector.current()).toBe('yes');
  });

  it('can treat a hidden page as idle', () => {
    vi.useFakeTimers();
    const document = new FakeDocument();
    document.hidden = true;
    const detector = new InactivityIdleDetector({ idleAfterMs: 1000, target: new EventTarget(), document, whenHidden: 'yes' });
    expect(detector.current()).toBe('yes');
    detector.dispose();
  });

  it("answers 'unknown' outside a browser", () => {
    expect(new InactivityIdleDetector().current()).toBe('unknown');
  });
});

describe('IdleDetectionApiDetector (Idle Detection API)', () => {
  class FakeIdleDetector extends EventTarget {
    static instances: FakeIdleDetector[] = [];
    static async requestPermission(): Promise<'granted' | 'denied'> {
      return 'granted';
    }
    userState: 'active' | 'idle' | null = null;
    screenState: 'locked' | 'unlocked' | null = null;
    threshold = 0;
    constructor() {
      super();
      FakeIdleDetector.instances.push(this);
    }
    async start(options: { threshold: number }): Promise<void> {
      this.threshold = options.threshold;
      this.userState = 'active';
      this.screenState = 'unlocked';
    }
    change(userState: 'active' | 'idle', screenState: 'locked' | 'unlocked'): void {
      this.userState = userState;
      this.screenState = screenState;
      this.dispatchEvent(new Event('change'));
    }
  }

  it('maps user and screen state', () => {
    expect(idleFromIdleDetector({ userState: 'idle', screenState: 'unlocked' })).toBe('yes');
    expect(idleFromIdleDetector({ userState: 'active', screenState: 'locked' })).toBe('yes');
    expect(idleFromIdleDetector({ userState: 'active', screenState: 'unlocked' })).toBe('no');
    expect(idleFromIdleDetector({ userState: null, screenState: null })).toBe('unknown');
  });

  it('observes only where permitted, with at least the 60 s minimum threshold', async () => {
    const granted = new IdleDetectionApiDetector({
      IdleDetector: FakeIdleDetector as unknown as IdleDetectorConstructor,
      permissions: { query: async () => ({ state: 'granted' }) },
      thresholdMs: 5000,
    });
    await granted.ready;
    expect(granted.current()).toBe('no');
    expect(FakeIdleDetector.instances.at(-1)!.threshold).toBe(60_000);
    FakeIdleDetector.instances.at(-1)!.change('idle', 'unlocked');
    expect(granted.current()).toBe('yes');
    granted.dispose();

    const count = FakeIdleDetector.instances.length;
    const prompt = new IdleDetectionApiDetector({
      IdleDetector: FakeIdleDetector as unknown as IdleDetectorConstructor,
      permissions: { query: async () => ({ state: 'prompt' }) },
    });
    await prompt.ready;
    expect(prompt.current()).toBe('unknown');
    expect(FakeIdleDetector.instances.length).toBe(count); // never prompts by itself

    // Granted later (the app called requestPermission() from a click): starts by itself.
    const status = Object.assign(new EventTarget(), { state: 'prompt' });
    const later = new IdleDetectionApiDetector({
      IdleDetector: FakeIdleDetector as unknown as IdleDetectorConstructor,
      permissions: { query: async () => status },
    });
    await later.ready;
    expect(later.current()).toBe('unknown');
    status.state = 'granted';
    status.dispatchEvent(new Event('change'));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(later.current()).toBe('no');
    later.dispose();

    const missing = new IdleDetectionApiDetector({ permissions: { query: async () => ({ state: 'granted' }) } });
    await missing.ready;
    expect(missing.current()).toBe('unknown');
  });
});

describe('browserConditions', () => {
  it('provides named detectors for all three conditions; in Node they answer unknown = not eligible', async () => {
    const detectors = browserConditions();
    expect(detectors.map((detector) => `${detector.kind}:${detector.name}`)).toEqual([
      'charging:battery-status-api',
      'unmetered:network-information-api',
      'idle:user-inactivity',
      'idle:idle-detection-api',
    ]);
    const monitor = new ConditionMonitor(detectors);
    expect(monitor.eligibility).toMatchObject({ eligible: false, reasons: ['unknown_conditions'] });
    expect(new ConditionMonitor(detectors, 'eligible').eligibility.eligible).toBe(true);
    for (const detector of detectors) detector.dispose?.();
  });
});
