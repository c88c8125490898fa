import { fixedPointScales } from '@flock/client-sdk/secagg';
import { isSplittable } from '../../aggregation/strategies.js';
import type { RoundParams } from '../../contract/index.js';

/**
 * Why a secure round cannot run with these parameters (null when it can): the coordinator sees only
 * the sum, so nothing that needs individual updates may be asked for, and DP noise must come from
 * the devices ('distributed', which in turn needs secure aggregation).
 */
export function secureRoundRefusal(params: RoundParams, cluster: boolean): string | null {
  const secure = params.secureAggregation;
  const dp = params.differentialPrivacy;
  if (!secure) {
    return dp?.noise === 'distributed'
      ? "differentialPrivacy.noise 'distributed' is added by the devices under secure aggregation: turn secureAggregation on, or use noise 'central'"
      : null;
  }
  if (cluster) return 'secure aggregation runs in one coordinator process; it is not available in cluster mode (FLOCK_REDIS_URL)';
  if (dp && dp.noise !== 'distributed') {
    return "with secure aggregation the coordinator sees only the sum and cannot add the noise: set differentialPrivacy.noise to 'distributed' (the devices add it), see docs/PRIVACY.md";
  }
  if (dp && secure.clipNorm !== dp.clipNorm) {
    return `secureAggregation.clipNorm (${secure.clipNorm}) and differentialPrivacy.clipNorm (${dp.clipNorm}) must agree: devices clip to one bound, the one the noise is calibrated to`;
  }
  if (!isSplittable(params.strategy, params.strategyOptions) || params.strategyOptions.clipNorm !== undefined) {
    return `strategy "${params.strategy}"${params.strategyOptions.clipNorm !== undefined ? ' with clipNorm' : ''} needs individual updates, which secure aggregation hides; use one of the weighted-mean family (fedavg, fedavgm, fedprox, fedadagrad, fedadam, fedyogi) and secureAggregation.clipNorm, which devices apply themselves`;
  }
  if (params.plan.compression && params.plan.compression.kind !== 'none') {
    return 'compressed uploads are for rounds without secure aggregation (a masked vector does not compress): leave compression out';
  }
  if (params.maxUpdateNorm !== null) {
    return 'maxUpdateNorm checks each update on the coordinator, which secure aggregation hides; use secureAggregation.clipNorm (devices clip to it)';
  }
  const selected = Math.ceil(params.targetClients * params.overSelection);
  try {
    fixedPointScales({ clipNorm: secure.clipNorm, maxWeight: secureMaxWeight(params, params.plan.maxExamplesPerUpdate ?? 1), maxSummands: selected });
  } catch (error) {
    return `secure aggregation cannot encode this round: ${(error as Error).message}`;
  }
  return null;
}

/** The most examples one secure input counts for: one in a DP round (one device, one vote), else the round's example cap. */
export function secureMaxWeight(params: Pick<RoundParams, 'differentialPrivacy'>, exampleCap: number): number {
  return params.differentialPrivacy ? 1 : exampleCap;
}
