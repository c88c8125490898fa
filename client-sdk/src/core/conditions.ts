/**
 * Device conditions (Bonawitz et al. 2019): a device trains only while idle, charging and on an
 * unmetered network, and stops as soon as one of these changes.
 *
 * Each condition comes from named, replaceable detectors behind one small interface. Platform
 * adapters provide detectors (src/browser/ for the web); Node and React Native apps pass their own,
 * e.g. a ManualCondition that they `set()` from native events.
 */
import type { IneligibilityReason } from '../protocol/reasons.js';
import { DEFAULT_UNKNOWN_POLICY } from './defaults.js';

/** A detector's answer. 'unknown' when the platform cannot tell (API missing or not permitted). */
export type ConditionValue = 'yes' | 'no' | 'unknown';

/** The three conditions a device must meet to train. */
export const CONDITION_KINDS = ['idle', 'charging', 'unmetered'] as const;
export type ConditionKind = (typeof CONDITION_KINDS)[number];

export type ConditionValues = Record<ConditionKind, ConditionValue>;

/** One source of one condition. */
export interface ConditionDetector {
  /** Human-readable, unique within a client (e.g. 'battery-status-api'). */
  readonly name: string;
  /** Which condition it answers. */
  readonly kind: ConditionKind;
  /** The latest answer (synchronous: detectors cache what their platform last told them). */
  current(): ConditionValue;
  /** Calls `listener` with each new answer; returns a function that unsubscribes. */
  subscribe(listener: (value: ConditionValue) => void): () => void;
  /** Releases platform listeners (optional). */
  dispose?(): void;
}

/**
 * A detector holding a value and notifying subscribers when it changes. Base class for the
 * platform detectors; also usable directly.
 */
export class ObservableCondition implements ConditionDetector {
  private value: ConditionValue;
  private readonly listeners = new Set<(value: ConditionValue) => void>();

  constructor(
    readonly kind: ConditionKind,
    readonly name: string,
    initial: ConditionValue = 'unknown',
  ) {
    this.value = initial;
  }

  current(): ConditionValue {
    return this.value;
  }

  subscribe(listener: (value: ConditionValue) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispose(): void {
    this.listeners.clear();
  }

  /** Stores a new answer and notifies subscribers synchronously when it differs. */
  protected update(value: ConditionValue): void {
    if (value === this.value) return;
    this.value = value;
    for (const listener of [...this.listeners]) listener(value);
  }
}

/**
 * A condition the app sets itself: from React Native's battery/NetInfo modules, an OS hook in
 * Node, or a test. `set()` notifies subscribers synchronously, so a training loop sees the change
 * before its next batch.
 */
export class ManualCondition extends ObservableCondition {
  constructor(kind: ConditionKind, initial: ConditionValue = 'unknown', name = `manual-${kind}`) {
    super(kind, name, initial);
  }

  set(value: ConditionValue): void {
    this.update(value);
  }
}

/** A condition that never changes, e.g. `staticCondition('charging', 'yes')` for a server-side client. */
export function staticCondition(kind: ConditionKind, value: ConditionValue, name = `static-${kind}`): ConditionDetector {
  return new ObservableCondition(kind, name, value);
}

/** Convenience: one ManualCondition per kind, all with the same initial value. */
export function manualConditions(initial: ConditionValue = 'unknown'): Record<ConditionKind, ManualCondition> {
  return {
    idle: new ManualCondition('idle', initial),
    charging: new ManualCondition('charging', initial),
    unmetered: new ManualCondition('unmetered', initial),
  };
}

/**
 * Combines several detectors' answers for the same condition: any 'no' wins (one source seeing the
 * user active is enough to be busy), else any 'yes', else 'unknown' (also when there is no detector).
 */
export function combineValues(values: readonly ConditionValue[]): ConditionValue {
  if (values.includes('no')) return 'no';
  if (values.includes('yes')) return 'yes';
  return 'unknown';
}

/** What an 'unknown' answer means: one rule for all conditions or one per condition (unlisted: ineligible). */
export type UnknownConditionPolicy = 'eligible' | 'ineligible' | Partial<Record<ConditionKind, 'eligible' | 'ineligible'>>;

export interface Eligibility {
  eligible: boolean;
  /** Why not, in protocol reason codes (empty when eligible). */
  reasons: IneligibilityReason[];
  /** The combined answer per condition. */
  values: ConditionValues;
}

const REASON_FOR_NO: Record<ConditionKind, IneligibilityReason> = {
  idle: 'not_idle',
  charging: 'not_charging',
  unmetered: 'metered_network',
};

function unknownIsEligible(policy: UnknownConditionPolicy, kind: ConditionKind): boolean {
  if (policy === 'eligible') return true;
  if (policy === 'ineligible') return false;
  return policy[kind] === 'eligible';
}

/** The eligibility rule: every condition 'yes', or 'unknown' where the policy allows it. */
export function evaluateEligibility(values: ConditionValues, policy: UnknownConditionPolicy = DEFAULT_UNKNOWN_POLICY): Eligibility {
  const reasons: IneligibilityReason[] = [];
  let unknownBlocks = false;
  for (const kind of CONDITION_KINDS) {
    const value = values[kind];
    if (value === 'no') reasons.push(REASON_FOR_NO[kind]);
    else if (value === 'unknown' && !unknownIsEligible(policy, kind)) unknownBlocks = true;
  }
  if (unknownBlocks) reasons.push('unknown_conditions');
  return { eligible: reasons.length === 0, reasons, values: { ...values } };
}

function sameEligibility(a: Eligibility, b: Eligibility): boolean {
  return a.eligible === b.eligible && CONDITION_KINDS.every((kind) => a.values[kind] === b.values[kind]);
}

/**
 * Watches a set of detectors and recomputes eligibility on every change. Listeners run
 * synchronously inside the detector's notification, so a stop flag set by a listener is visible to
 * a training loop before its next batch.
 */
export class ConditionMonitor {
  private readonly listeners = new Set<(eligibility: Eligibility) => void>();
  private readonly unsubscribes: (() => void)[] = [];
  private state: Eligibility;

  constructor(
    readonly detectors: readonly ConditionDetector[],
    readonly policy: UnknownConditionPolicy = DEFAULT_UNKNOWN_POLICY,
  ) {
    const names = new Set<string>();
    for (const detector of detectors) {
      if (names.has(detector.name)) throw new Error(`two condition detectors are named '${detector.name}'`);
      names.add(detector.name);
    }
    this.state = this.compute();
    for (const detector of detectors) this.unsubscribes.push(detector.subscribe(() => this.refresh()));
  }

  /** Current answer per detector name (for diagnostics). */
  detectorValues(): Record<string, ConditionValue> {
    return Object.fromEntries(this.detectors.map((detector) => [detector.name, detector.current()]));
  }

  get eligibility(): Eligibility {
    return this.state;
  }

  /** Calls `listener` on every change of eligibility or of a combined condition value. */
  subscribe(listener: (eligibility: Eligibility) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops listening to the detectors (does not dispose them: the app owns them). */
  close(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    this.listeners.clear();
  }

  private compute(): Eligibility {
    const values = {} as ConditionValues;
    for (const kind of CONDITION_KINDS) {
      values[kind] = combineValues(this.detectors.filter((detector) => detector.kind === kind).map((detector) => detector.current()));
    }
    return evaluateEligibility(values, this.policy);
  }

  private refresh(): void {
    const next = this.compute();
    if (sameEligibility(next, this.state)) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener(next);
  }
}
