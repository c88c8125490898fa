import { z } from 'zod';
import { FedAvg, WeightedMeanAccumulator } from './fedavg.js';
import { NormBounded } from './norm-bounded.js';
import { StrategyConfigError, strategyOptionsSchema, type StrategyOptionName, type StrategyOptions } from './options.js';
import { ComposedStrategy } from './pipeline.js';
import { CoordinateMedian, DEFAULT_MAX_BUFFERED_UPDATES, Krum, TrimmedMean, trimCount } from './robust.js';
import { AdaptiveServerOptimizer, DirectUpdate, ServerMomentum, type AdaptiveVariant } from './server-optimizers.js';
import type { Strategy } from './strategy.js';
import { isStrategyName, STRATEGY_NAMES, type StrategyName } from '../contract/index.js';

export { StrategyConfigError, strategyOptionsSchema, type StrategyOptionName, type StrategyOptions } from './options.js';

// Names are part of the REST contract (a round's strategy); the catalog below must cover exactly them.
export { DEFAULT_STRATEGY, STRATEGY_NAMES, type StrategyName } from '../contract/index.js';

type Defaults = Readonly<Partial<Record<StrategyOptionName, number>>>;

export interface StrategyDescriptor {
  /** One line: what it does. */
  summary: string;
  /** Where it comes from. */
  paper: string;
  /** Options it accepts (clipNorm is accepted by all). */
  options: readonly StrategyOptionName[];
  /** Defaults of those options; an option without a default is off (clipNorm) or derived (multiKrumSelect = n - f). */
  defaults: Defaults;
  /** True when it keeps every update of the round in memory (n × model size × 4 bytes). */
  buffersUpdates: boolean;
}

/** Options over defaults, plus whether μ was given explicitly (FedProx precedence). */
interface ResolvedOptions extends StrategyOptions {
  explicitProximalMu?: number;
}

interface Entry extends StrategyDescriptor {
  build(options: ResolvedOptions): Strategy;
}

const BUFFERED = ['maxBufferedUpdates', 'clipNorm'] as const satisfies readonly StrategyOptionName[];

/**
 * FedOpt defaults (Reddi et al.'s typical β1, β2, τ). η (set per strategy below): 1e-2 for Adam and
 * Yogi (Flower's FedYogi default; Reddi et al. tuned 10^-2.5 on EMNIST), 1e-1 for Adagrad (its best
 * on EMNIST; Adagrad's steps start (1 - β1) = 10× smaller than Adam's and keep shrinking).
 */
const ADAPTIVE_DEFAULTS = { beta1: 0.9, beta2: 0.99, tau: 1e-3 } as const;

function adaptive(variant: AdaptiveVariant, name: StrategyName) {
  return (o: ResolvedOptions): Strategy =>
    new ComposedStrategy({
      name,
      createAggregator: (size) => new WeightedMeanAccumulator(size),
      weightedMean: true,
      optimizer: new AdaptiveServerOptimizer({
        stateTag: name,
        variant,
        learningRate: o.serverLearningRate!,
        beta1: o.beta1!,
        beta2: o.beta2 ?? 0, // unused by adagrad
        tau: o.tau!,
      }),
    });
}

/**
 * The registry. Defaults and the reasons for them are in docs/STRATEGIES.md; numbers here are the
 * source of truth.
 */
const CATALOG: Readonly<Record<StrategyName, Entry>> = {
  fedavg: {
    summary: 'Example-weighted mean of the deltas, applied with step 1. Streaming.',
    paper: 'McMahan et al. 2017, Communication-Efficient Learning of Deep Networks from Decentralized Data',
    options: ['clipNorm'],
    defaults: {},
    buffersUpdates: false,
    build: () => new FedAvg(),
  },
  fedavgm: {
    summary: 'FedAvg with server momentum: v = β·v + Δ, x = x + η·v. Streaming; v persisted.',
    paper: 'Hsu et al. 2019, Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification',
    options: ['serverLearningRate', 'serverMomentum', 'clipNorm'],
    defaults: { serverLearningRate: 1, serverMomentum: 0.9 },
    buffersUpdates: false,
    build: (o) =>
      new ComposedStrategy({
        name: 'fedavgm',
        createAggregator: (size) => new WeightedMeanAccumulator(size),
        weightedMean: true,
        optimizer: new ServerMomentum({ stateTag: 'fedavgm', learningRate: o.serverLearningRate!, momentum: o.serverMomentum! }),
      }),
  },
  fedprox: {
    summary: 'Aggregates like FedAvg; sets the proximal term μ in the plan, which the SDK adds to local training.',
    paper: 'Li et al. 2020, Federated Optimization in Heterogeneous Networks',
    options: ['proximalMu', 'clipNorm'],
    defaults: { proximalMu: 1 },
    buffersUpdates: false,
    build: (o) =>
      new ComposedStrategy({
        name: 'fedprox',
        createAggregator: (size) => new WeightedMeanAccumulator(size),
        weightedMean: true,
        optimizer: new DirectUpdate(),
        // Precedence: the strategy option, else a μ the round's plan already carries, else the default.
        configurePlan: (plan) => ({ ...plan, proximalMu: o.explicitProximalMu ?? plan.proximalMu ?? o.proximalMu! }),
      }),
  },
  fedadagrad: {
    summary: 'Adagrad on the server over the weighted-mean pseudo-gradient. Streaming; m, v persisted.',
    paper: 'Reddi et al. 2021, Adaptive Federated Optimization',
    options: ['serverLearningRate', 'beta1', 'tau', 'clipNorm'],
    defaults: { serverLearningRate: 0.1, beta1: ADAPTIVE_DEFAULTS.beta1, tau: ADAPTIVE_DEFAULTS.tau },
    buffersUpdates: false,
    build: adaptive('adagrad', 'fedadagrad'),
  },
  fedadam: {
    summary: 'Adam on the server (no bias correction) over the weighted-mean pseudo-gradient. Streaming; m, v persisted.',
    paper: 'Reddi et al. 2021, Adaptive Federated Optimization',
    options: ['serverLearningRate', 'beta1', 'beta2', 'tau', 'clipNorm'],
    defaults: { serverLearningRate: 0.01, ...ADAPTIVE_DEFAULTS },
    buffersUpdates: false,
    build: adaptive('adam', 'fedadam'),
  },
  fedyogi: {
    summary: 'Yogi on the server over the weighted-mean pseudo-gradient. Streaming; m, v persisted.',
    paper: 'Reddi et al. 2021, Adaptive Federated Optimization',
    options: ['serverLearningRate', 'beta1', 'beta2', 'tau', 'clipNorm'],
    defaults: { serverLearningRate: 0.01, ...ADAPTIVE_DEFAULTS },
    buffersUpdates: false,
    build: adaptive('yogi', 'fedyogi'),
  },
  median: {
    summary: 'Coordinate-wise median of the deltas (unweighted). Tolerates < n/2 arbitrary updates. Buffers updates.',
    paper: 'Yin et al. 2018, Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates',
    options: BUFFERED,
    defaults: { maxBufferedUpdates: DEFAULT_MAX_BUFFERED_UPDATES },
    buffersUpdates: true,
    build: (o) =>
      new ComposedStrategy({ name: 'median', createAggregator: (size) => new CoordinateMedian(size, o.maxBufferedUpdates), optimizer: new DirectUpdate() }),
  },
  'trimmed-mean': {
    summary: 'Coordinate-wise mean after dropping the floor(β·n) smallest and largest values (unweighted). Buffers updates.',
    paper: 'Yin et al. 2018, Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates',
    options: ['trimFraction', ...BUFFERED],
    defaults: { trimFraction: 0.2, maxBufferedUpdates: DEFAULT_MAX_BUFFERED_UPDATES },
    buffersUpdates: true,
    build: (o) =>
      new ComposedStrategy({
        name: 'trimmed-mean',
        createAggregator: (size) => new TrimmedMean(size, o.trimFraction!, o.maxBufferedUpdates),
        optimizer: new DirectUpdate(),
      }),
  },
  krum: {
    summary: 'The single update with the smallest sum of squared distances to its n - f - 2 nearest neighbours. Needs n > 2f + 2. Buffers updates.',
    paper: 'Blanchard et al. 2017, Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent',
    options: ['byzantineClients', ...BUFFERED],
    defaults: { byzantineClients: 1, maxBufferedUpdates: DEFAULT_MAX_BUFFERED_UPDATES },
    buffersUpdates: true,
    build: (o) =>
      new ComposedStrategy({
        name: 'krum',
        createAggregator: (size) => new Krum(size, { byzantineClients: o.byzantineClients!, select: null, maxBufferedUpdates: o.maxBufferedUpdates }),
        optimizer: new DirectUpdate(),
      }),
  },
  'multi-krum': {
    summary: 'Plain (unweighted) mean of the m best Krum-scored updates; m defaults to n - f. Needs n > 2f + 2. Buffers updates.',
    paper: 'Blanchard et al. 2017, Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent',
    options: ['byzantineClients', 'multiKrumSelect', ...BUFFERED],
    defaults: { byzantineClients: 1, maxBufferedUpdates: DEFAULT_MAX_BUFFERED_UPDATES },
    buffersUpdates: true,
    build: (o) =>
      new ComposedStrategy({
        name: 'multi-krum',
        createAggregator: (size) =>
          new Krum(size, { byzantineClients: o.byzantineClients!, select: o.multiKrumSelect ?? 'n-f', maxBufferedUpdates: o.maxBufferedUpdates }),
        optimizer: new DirectUpdate(),
      }),
  },
};

function entryFor(name: string): Entry {
  if (!isStrategyName(name)) throw new StrategyConfigError(`unknown strategy "${name}"; known: ${STRATEGY_NAMES.join(', ')}`);
  return CATALOG[name];
}

/** What each strategy is, accepts and defaults to (for help texts and an API listing). */
export function describeStrategy(name: string): StrategyDescriptor {
  const { summary, paper, options, defaults, buffersUpdates } = entryFor(name);
  return { summary, paper, options, defaults, buffersUpdates };
}

/**
 * Validates options for a strategy: the schema (types, bounds, no unknown keys), that each given
 * option applies to that strategy, and cross-option limits. Throws StrategyConfigError.
 */
export function parseStrategyOptions(name: string, input: unknown = {}): StrategyOptions {
  const entry = entryFor(name);
  const parsed = strategyOptionsSchema.safeParse(input ?? {});
  if (!parsed.success) throw new StrategyConfigError(`invalid options for strategy "${name}":\n${z.prettifyError(parsed.error)}`);
  const options = parsed.data;
  const given = (Object.keys(options) as StrategyOptionName[]).filter((key) => options[key] !== undefined);
  const inapplicable = given.filter((key) => !entry.options.includes(key));
  if (inapplicable.length > 0) {
    throw new StrategyConfigError(
      `option${inapplicable.length > 1 ? 's' : ''} ${inapplicable.map((k) => `"${k}"`).join(', ')} do${inapplicable.length > 1 ? '' : 'es'} not apply to strategy "${name}"; ` +
        `it accepts: ${entry.options.join(', ')}`,
    );
  }
  const resolved = { ...entry.defaults, ...definedOnly(options) };
  const max = resolved.maxBufferedUpdates;
  if (max !== undefined) {
    const f = resolved.byzantineClients;
    if (f !== undefined && 2 * f + 3 > max) {
      throw new StrategyConfigError(`${name} with byzantineClients = ${f} needs at least 2f + 3 = ${2 * f + 3} updates, more than maxBufferedUpdates = ${max}`);
    }
    const m = resolved.multiKrumSelect;
    if (m !== undefined && f !== undefined && m > max - f) {
      throw new StrategyConfigError(`multiKrumSelect = ${m} can never be reached: at most n - f = ${max} - ${f} = ${max - f} updates are averaged`);
    }
    const beta = resolved.trimFraction;
    if (beta !== undefined && trimCount(beta, max) < 1) {
      throw new StrategyConfigError(`trimmed-mean with trimFraction ${beta} trims nothing with up to maxBufferedUpdates = ${max} updates; raise either`);
    }
  }
  return options;
}

function definedOnly(options: StrategyOptions): StrategyOptions {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}

/** The options a strategy will run with: the given ones over its defaults. Validates like createStrategy. */
export function effectiveStrategyOptions(name: string, options: unknown = {}): StrategyOptions {
  const parsed = parseStrategyOptions(name, options);
  return { ...entryFor(name).defaults, ...definedOnly(parsed) };
}

/**
 * Creates a strategy by name with per-round options (validated; see parseStrategyOptions). Adding
 * `clipNorm` wraps the strategy in NormBounded. Strategies hold no per-round state: create one per
 * round, or reuse it; state between rounds travels in `serverState`.
 *
 * | name         | options (defaults)                                                          |
 * |--------------|-----------------------------------------------------------------------------|
 * | fedavg       | —                                                                           |
 * | fedavgm      | serverLearningRate (1), serverMomentum (0.9)                                |
 * | fedprox      | proximalMu (1; a μ already in the plan wins over the default)               |
 * | fedadagrad   | serverLearningRate (0.1), beta1 (0.9), tau (1e-3)                           |
 * | fedadam      | serverLearningRate (0.01), beta1 (0.9), beta2 (0.99), tau (1e-3)            |
 * | fedyogi      | serverLearningRate (0.01), beta1 (0.9), beta2 (0.99), tau (1e-3)            |
 * | median       | maxBufferedUpdates (1000)                                                   |
 * | trimmed-mean | trimFraction (0.2), maxBufferedUpdates (1000)                               |
 * | krum         | byzantineClients (1), maxBufferedUpdates (1000)                             |
 * | multi-krum   | byzantineClients (1), multiKrumSelect (n - f), maxBufferedUpdates (1000)    |
 *
 * Every strategy also accepts clipNorm (off by default). See docs/STRATEGIES.md.
 */
export function createStrategy(name: string, options: StrategyOptions = {}): Strategy {
  const entry = entryFor(name);
  const parsed = parseStrategyOptions(name, options);
  const resolved = { ...entry.defaults, ...definedOnly(parsed) };
  const strategy = entry.build({ ...resolved, explicitProximalMu: parsed.proximalMu });
  return parsed.clipNorm !== undefined ? new NormBounded(strategy, parsed.clipNorm) : strategy;
}

/**
 * The fewest accepted updates with which `finish` can succeed: 2f + 3 for krum and multi-krum, the
 * smallest n with floor(β·n) >= 1 for trimmed-mean, 1 otherwise. Use it to validate a round's
 * minClients up front instead of failing at commit. Validates like createStrategy.
 */
export function minimumUpdates(name: string, options: unknown = {}): number {
  const resolved = effectiveStrategyOptions(name, options);
  if (name === 'krum' || name === 'multi-krum') return 2 * resolved.byzantineClients! + 3;
  if (name === 'trimmed-mean') {
    let n = 1;
    while (trimCount(resolved.trimFraction!, n) < 1) n++;
    return n;
  }
  return 1;
}

/**
 * Whether a strategy can aggregate over several coordinator processes (cluster mode): the
 * weighted-mean family (fedavg, fedavgm, fedprox, fedadagrad, fedadam, fedyogi, with or without
 * clipNorm) can; median, trimmed-mean, krum and multi-krum need every update in one process.
 */
export function isSplittable(name: string, options: StrategyOptions = {}): boolean {
  return (createStrategy(name, options).split?.() ?? null) !== null;
}

/** createStrategy(name) with default options. Unknown names throw, listing the known ones. */
export function getStrategy(name: string): Strategy {
  return createStrategy(name);
}
