import { fixedPointScales } from '@flock/client-sdk/secagg';
import { isSplittable } from '../../aggregation/strategies.js';
import type { RoundParams } from '../../contract/index.js';

/**
 * Why a secure round cannot run with these parameters (null when it can): the coordinator sees only
 * the sum, so nothing that needs individual updates may be asked for.
 */
export function secureRoundRefusal(params: RoundParams, cluster: boolean): string | null {
  const secure = params.secureAggregation;
  if (!secure) return null;
  if (cluster) return 'secure aggregation runs in one coordinator process; it is not available in cluster mode (FLOCK_REDIS_URL)';
  if (params.differentialPrivacy) {
    return 'differential privacy with secure aggregation needs noise added by the devices (distributed DP), which is not built yet: run DP rounds without secure aggregation (central noise), see docs/PRIVACY.md';
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
    fixedPointScales({ clipNorm: secure.clipNorm, maxWeight: params.plan.maxExamplesPerUpdate ?? 1, maxSummands: selected });
  } catch (error) {
    return `secure aggregation cannot encode this round: ${(error as Error).message}`;
  }
  return null;
}
