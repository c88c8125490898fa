import { describe, expect, it } from 'vitest';
import {
  CONDITION_KINDS,
  combineValues,
  ConditionMonitor,
  evaluateEligibility,
  ManualCondition,
  manualConditions,
  staticCondition,
  type ConditionKind,
  type ConditionValue,
  type ConditionValues,
  type UnknownConditionPolicy,
} from '../src/index.js';

const VALUES: ConditionValue[] = ['yes', 'no', 'unknown'];
const ALL_COMBINATIONS: ConditionValues[] = VALUES.flatMap((idle) => VALUES.flatMap((charging) => VALUES.map((unmetered) => ({ idle, charging, unmetered }))));

const NO_REASON: Record<ConditionKind, string> = { idle: 'not_idle', charging: 'not_charging', unmetered: 'metered_network' };

/** The rule restated independently of the implementation. */
function expected(values: ConditionValues, unknownOk: (kind: ConditionKind) => boolean): { eligible: boolean; reasons: string[] } {
  const reasons = CONDITION_KINDS.filter((kind) => values[kind] === 'no').map((kind) => NO_REASON[kind]);
  if (CONDITION_KINDS.some((kind) => values[kind] === 'unknown' && !unknownOk(kind))) reasons.push('unknown_conditions');
  return { eligible: reasons.length === 0, reasons };
}

describe('evaluateEligibility', () => {
  it('covers all 27 combinations of yes/no/unknown', () => {
    expect(ALL_COMBINATIONS).toHaveLength(27);
  });

  it.each(ALL_COMBINATIONS)('default policy (unknown = not eligible): %o', (values) => {
    const result = evaluateEligibility(values);
    expect({ eligible: result.eligible, reasons: result.reasons }).toEqual(expected(values, () => false));
    // Eligible only when all three are a plain yes.
    expect(result.eligible).toBe(values.idle === 'yes' && values.charging === 'yes' && values.unmetered === 'yes');
  });

  it.each(ALL_COMBINATIONS)("policy 'eligible' (unknown counts as yes): %o", (values) => {
    const result = evaluateEligibility(values, 'eligible');
    expect({ eligible: result.eligible, reasons: result.reasons }).toEqual(expected(values, () => true));
    expect(result.eligible).toBe(!Object.values(values).includes('no'));
  });

  const perKind: UnknownConditionPolicy = { idle: 'eligible', unmetered: 'ineligible' }; // charging unlisted: ineligible
  it.each(ALL_COMBINATIONS)('per-condition policy {idle: eligible, unmetered: ineligible}: %o', (values) => {
    const result = evaluateEligibility(values, perKind);
    expect({ eligible: result.eligible, reasons: result.reasons }).toEqual(expected(values, (kind) => kind === 'idle'));
  });

  it('reports every failing condition, unknown once', () => {
    expect(evaluateEligibility({ idle: 'no', charging: 'no', unmetered: 'no' }).reasons).toEqual(['not_idle', 'not_charging', 'metered_network']);
    expect(evaluateEligibility({ idle: 'unknown', charging: 'unknown', unmetered: 'no' }).reasons).toEqual(['metered_network', 'unknown_conditions']);
  });
});

describe('combineValues', () => {
  it('any no wins, then any yes, else unknown', () => {
    expect(combineValues([])).toBe('unknown');
    expect(combineValues(['unknown'])).toBe('unknown');
    expect(combineValues(['yes', 'unknown'])).toBe('yes');
    expect(combineValues(['yes', 'no'])).toBe('no');
    expect(combineValues(['unknown', 'no', 'yes'])).toBe('no');
    expect(combineValues(['yes', 'yes'])).toBe('yes');
  });
});

describe('ConditionMonitor', () => {
  it('watches detectors and notifies synchronously on every change', () => {
    const conditions = manualConditions('yes');
    const monitor = new ConditionMonitor(Object.values(conditions));
    const seen: boolean[] = [];
    monitor.subscribe((eligibility) => seen.push(eligibility.eligible));
    expect(monitor.eligibility.eligible).toBe(true);

    conditions.charging.set('no');
    expect(seen).toEqual([false]); // already delivered when set() returns
    expect(monitor.eligibility.reasons).toEqual(['not_charging']);
    conditions.charging.set('no'); // no change, no notification
    conditions.unmetered.set('unknown');
    conditions.charging.set('yes');
    expect(monitor.eligibility.reasons).toEqual(['unknown_conditions']);
    conditions.unmetered.set('yes');
    expect(seen).toEqual([false, false, false, true]);
    monitor.close();
    conditions.idle.set('no');
    expect(seen).toHaveLength(4);
  });

  it('treats a missing condition as unknown and combines several detectors per condition', () => {
    const inactivity = new ManualCondition('idle', 'yes', 'inactivity');
    const systemIdle = new ManualCondition('idle', 'unknown', 'system-idle');
    const monitor = new ConditionMonitor([inactivity, systemIdle, staticCondition('charging', 'yes')], 'ineligible');
    expect(monitor.eligibility.values).toEqual({ idle: 'yes', charging: 'yes', unmetered: 'unknown' });
    expect(monitor.eligibility.eligible).toBe(false);
    systemIdle.set('no');
    expect(monitor.eligibility.values.idle).toBe('no');
    expect(monitor.detectorValues()).toEqual({ inactivity: 'yes', 'system-idle': 'no', 'static-charging': 'yes' });
  });

  it('rejects two detectors with the same name', () => {
    expect(() => new ConditionMonitor([new ManualCondition('idle', 'yes', 'x'), new ManualCondition('charging', 'yes', 'x')])).toThrow(/named 'x'/);
  });
});
