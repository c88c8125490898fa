/** Differential privacy in the REST contract: a round's DP parameters, a version's privacy account, `GET /api/privacy`. */
import { z } from 'zod';

/** Who adds a DP round's noise (docs/PRIVACY.md). */
export const DP_NOISE_SOURCES = ['central', 'distributed'] as const;
export type DpNoiseSource = (typeof DP_NOISE_SOURCES)[number];

/**
 * DP-FedAvg parameters of one round (McMahan et al. 2018): each device is included independently
 * with probability `samplingRate` (Poisson sampling), its update clipped to L2 norm `clipNorm` and
 * weighted uniformly, and Gaussian noise of standard deviation noiseMultiplier · clipNorm added to
 * the sum, which is divided by the expected number of updates. docs/PRIVACY.md says what this
 * guarantees.
 */
export const differentialPrivacySchema = z
  .object({
    noiseMultiplier: z.number().min(0.1).max(100).describe('z: the noise on the sum of updates has standard deviation z * clipNorm'),
    clipNorm: z.number().positive().max(10_000).describe('C: every update is clipped to this L2 norm (by the SDK, and again by the coordinator)'),
    samplingRate: z
      .number()
      .gt(0)
      .max(1)
      .describe('q: each eligible device (after the per-user and per-address rules) is selected independently with this probability'),
    adaptiveClipping: z
      .object({
        targetQuantile: z.number().gt(0).lt(1).default(0.5).describe('γ: the share of updates C should leave unclipped'),
        learningRate: z.number().positive().max(10).default(0.2).describe('η: C ← C · exp(−η (b̃ − γ)) after each DP round'),
        countNoiseStd: z.number().positive().optional().describe('σ_b, the noise on the count of unclipped updates (default: max(expected updates / 20, z))'),
      })
      .strict()
      .optional()
      .describe(
        'Adaptive clipping (Andrew et al. 2021): clipNorm is the first C; each DP round then moves C towards the target quantile of update norms, estimated with its own noise, within the same noise multiplier',
      ),
    noise: z
      .enum(DP_NOISE_SOURCES)
      .default('central')
      .describe(
        "Who adds the noise: 'central', the coordinator, to the sum; 'distributed', the devices, each its share before masking (needs secureAggregation: the coordinator then never sees an update without noise, nor unmasked)",
      ),
  })
  .strict();
export type DifferentialPrivacy = z.output<typeof differentialPrivacySchema>;
export type DifferentialPrivacyRequest = z.input<typeof differentialPrivacySchema>;

const count = z.number().int().min(0);

/**
 * The privacy account stored with every model version: the coordinator's ledger of DP rounds
 * (composed in Rényi DP, never reduced by a rollback or a registration) as of this version, and
 * whether this version's own lineage holds only DP rounds.
 */
export const privacyAccountSchema = z.object({
  protected: z
    .boolean()
    .describe("True when every round in this version's lineage was differentially private: its ε below then bounds what it reveals about any device"),
  dpRounds: count.describe('DP rounds committed by this coordinator up to this version (rolled-back ones included)'),
  epsilon: z.number().min(0).describe('ε of all those DP rounds together, at `delta`'),
  delta: z.number().gt(0).lt(1),
  orders: z.array(z.number().gt(1)).max(1000).describe('Rényi orders of `rdp`'),
  rdp: z.array(z.number().min(0)).max(1000).describe('The ledger: Rényi DP at each order, summed over the DP rounds'),
});
export type PrivacyAccount = z.infer<typeof privacyAccountSchema>;

/** `GET /api/privacy`: the budget, what has been spent, and whether the current version is covered. */
export const privacyStatusSchema = z.object({
  delta: z.number().describe('The δ ε is reported at (FLOCK_DP_DELTA)'),
  budget: z
    .object({ epsilon: z.number().positive(), delta: z.number() })
    .nullable()
    .describe('FLOCK_DP_EPSILON_BUDGET at FLOCK_DP_DELTA; null: no budget, rounds without DP allowed'),
  spent: z.object({
    epsilon: z.number().min(0).describe('ε of every DP round committed so far, at delta'),
    dpRounds: count,
  }),
  remaining: z.number().nullable().describe('budget.epsilon - spent.epsilon; null without a budget'),
  currentVersion: z.number().int().min(1).nullable(),
  currentProtected: z
    .boolean()
    .nullable()
    .describe("Whether the current version's lineage holds only DP rounds (null: no version, or one stored before privacy accounts existed)"),
});
export type PrivacyStatus = z.infer<typeof privacyStatusSchema>;
