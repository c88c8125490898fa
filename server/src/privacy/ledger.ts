import type { DifferentialPrivacy, PrivacyAccount } from '../contract/index.js';
import { DEFAULT_ORDERS, epsilonFromRdp, rdpOfSampledGaussian } from './rdp.js';

/*
 * The privacy ledger, pure: every committed DP round adds its Rényi DP (rdp.ts) to the account the
 * new version stores. The ledger only grows: a rollback or a registered model carries it on (the
 * versions the earlier rounds produced stay stored and downloadable), and it is never reset.
 * `protected` follows the version's own lineage: a round without DP makes it false for the version
 * it commits and every version trained from that one.
 */

/** The budget an operator set: no round may take the ledger above epsilon at delta. */
export interface PrivacyBudget {
  epsilon: number;
  delta: number;
}

/** The ledger's RDP at DEFAULT_ORDERS (an account stored at other orders is re-read at its own orders' upper envelope). */
function ledgerRdp(ledger: PrivacyAccount | null): number[] {
  if (!ledger) return DEFAULT_ORDERS.map(() => 0);
  if (ledger.orders.length === DEFAULT_ORDERS.length && ledger.orders.every((order, i) => order === DEFAULT_ORDERS[i])) return [...ledger.rdp];
  // Orders changed between releases: RDP is non-decreasing in the order, so the value at the next
  // stored order above bounds it (the largest double where none is above: JSON has no Infinity).
  return DEFAULT_ORDERS.map((order) => {
    const i = ledger.orders.findIndex((stored) => stored >= order);
    return i < 0 ? Number.MAX_VALUE : ledger.rdp[i]!;
  });
}

/** The ledger after one more DP round (or the same ledger, not protected, after a round without DP). */
export function accountAfterRound(ledger: PrivacyAccount | null, parentProtected: boolean, dp: DifferentialPrivacy | null, delta: number): PrivacyAccount {
  const rdp = ledgerRdp(ledger);
  if (dp) rdpOfSampledGaussian(dp.samplingRate, dp.noiseMultiplier, DEFAULT_ORDERS).forEach((value, i) => (rdp[i]! += value));
  return {
    protected: parentProtected && dp !== null,
    dpRounds: (ledger?.dpRounds ?? 0) + (dp ? 1 : 0),
    epsilon: epsilonFromRdp(DEFAULT_ORDERS, rdp, delta).epsilon,
    delta,
    orders: [...DEFAULT_ORDERS],
    rdp,
  };
}

/** A version that copies another's weights (rollback): the ledger carried on, the lineage of the copied version. */
export function accountCarried(ledger: PrivacyAccount | null, copiedProtected: boolean, delta: number): PrivacyAccount {
  return { ...accountAfterRound(ledger, true, null, delta), protected: copiedProtected };
}

/** ε of an account at another δ. */
export function epsilonAt(account: PrivacyAccount, delta: number): number {
  return epsilonFromRdp(account.orders, account.rdp, delta).epsilon;
}

/**
 * Why a round may not start under the budget, or null when it may: a round without DP is refused
 * outright (its ε is unbounded), a DP round when the ledger after it would exceed the budget.
 */
export function budgetRefusal(ledger: PrivacyAccount | null, dp: DifferentialPrivacy | null, budget: PrivacyBudget | null): string | null {
  if (!budget) return null;
  if (!dp) {
    return `a privacy budget is set (FLOCK_DP_EPSILON_BUDGET = ${budget.epsilon} at delta ${budget.delta}): every round must be differentially private; add differentialPrivacy`;
  }
  const spent = ledger ? epsilonAt(ledger, budget.delta) : 0;
  const after = accountAfterRound(ledger, true, dp, budget.delta).epsilon;
  if (after <= budget.epsilon) return null;
  return (
    `privacy budget exceeded: the DP rounds so far spent epsilon = ${spent.toFixed(4)} and this round (noise multiplier ${dp.noiseMultiplier}, ` +
    `sampling rate ${dp.samplingRate}) would bring it to ${after.toFixed(4)}, above the budget of ${budget.epsilon} at delta ${budget.delta}`
  );
}
