/** The simulator's options, their defaults, and what they imply (clients per round, quorum, Byzantine clients). */
import type { Compression, KeyAgreement, PersonalizationPlan } from '@flock/client-sdk/protocol';
import type { DifferentialPrivacyRequest, StrategyOptions } from '../contract/index.js';
import { assignAttacks, type Attack, type AttackChoice } from './byzantine.js';
import type { PartitionKind } from './partition.js';
import type { RoundRow } from './report.js';

/**
 * Where training starts: an untrained seeded 2NN (`random`, the paper's setting), the in-process
 * coordinator's pre-trained default (`pretrained`), or the coordinator's current version (`current`:
 * an existing coordinator's live model; in process, its pre-trained default).
 */
export const INITIAL_MODEL_KINDS = ['random', 'pretrained', 'current'] as const;
export type InitialModelKind = (typeof INITIAL_MODEL_KINDS)[number];

export interface ExistingServer {
  url: string;
  clientToken: string;
  operatorToken: string;
}

export interface SimulationOptions {
  /** K, the number of virtual clients. */
  clients: number;
  /** C, the fraction of clients selected per round: m = max(round(C * K), 1). */
  fraction: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  rounds: number;
  /** Stop as soon as the global test accuracy reaches this (0-1); null: run all rounds. */
  targetAccuracy: number | null;
  strategy: string;
  /** Checked by the coordinator when a round starts. */
  strategyOptions: StrategyOptions;
  /** Secure aggregation with this key agreement (docs/SECURITY.md): the coordinator learns only the sum of each round's updates; null: plain rounds. */
  secureAggregation: KeyAgreement | null;
  partition: PartitionKind;
  /** Dirichlet concentration. */
  alpha: number;
  /** Concept shift: clusters of clients whose images are rotated by 90 degrees per cluster (IFCA's rotated MNIST: 4); 0 = off. */
  rotationClusters: number;
  /** Quantity skew (iid partition): log-normal spread sigma of client sizes; 0 = equal sizes. */
  quantitySkew: number;
  /** The devices' personalization method, stated in every round's plan; null: the SDK's default (fine-tune, no epochs). */
  personalization: PersonalizationPlan | null;
  /** Training examples per client (default floor(60000 / K), 600 for K = 100). */
  examplesPerClient: number | null;
  seed: number;
  /** Probability that a selected client's conditions flip to 'no' mid-training. */
  dropout: number;
  /** Fraction of clients that are Byzantine (poisoned but protocol-valid uploads). */
  byzantine: number;
  /** What the Byzantine clients do (see byzantine.ts); 'mixed': noise, sign-flip and label-flip in turn. */
  attack: AttackChoice;
  /**
   * The in-process coordinator's bounded-influence defaults (example cap, adaptive norm bound,
   * per-address selection cap); false turns them off, to show what the attacks do without them.
   */
  defenses: boolean;
  workers: number;
  /**
   * Where training starts; null: `random` in process, `current` with `server`, so that a simulation
   * never replaces a live model unless told to (`replaceModel`).
   */
  init: InitialModelKind | null;
  /** With `server` and init `random`: register the random 2NN as the server's new current version (required for that). */
  replaceModel: boolean;
  /** Examples the coordinator's default model trains on (init pretrained, in-process only). */
  pretrainExamples: number;
  /** Held-out local test examples per client (drawn from the MNIST test split with the client's label mix). */
  localTestExamples: number;
  /** Fraction of clients that test each published global model locally (the SDK's adoption flow); 0 = none. */
  localEvaluation: number;
  overSelection: number;
  /** Valid updates needed to commit; null: m without dropout, 1 with dropout. */
  minClients: number | null;
  deadlineSeconds: number;
  /** How devices compress uploads (the rounds' plan); with compression, devices also fetch new versions as download deltas. */
  compression: Compression;
  /** Run against this coordinator instead of an in-process one. */
  server: ExistingServer | null;
  /**
   * DP-FedAvg rounds (docs/PRIVACY.md): Poisson sampling at `samplingRate` replaces `fraction`; null: no DP.
   * The in-process coordinator reports ε at `dpDelta`.
   */
  differentialPrivacy: DifferentialPrivacyRequest | null;
  dpDelta: number;
  onRound?: (row: RoundRow) => void;
  onLog?: (message: string) => void;
  /** Stops after the round in flight is cancelled; the rounds so far are returned (`stopped: true`). */
  signal?: AbortSignal;
}

export const DEFAULT_SIMULATION_OPTIONS: SimulationOptions = {
  clients: 100,
  fraction: 0.1,
  epochs: 1,
  batchSize: 10,
  learningRate: 0.1,
  rounds: 20,
  targetAccuracy: null,
  strategy: 'fedavg',
  strategyOptions: {},
  secureAggregation: null,
  partition: 'iid',
  alpha: 0.5,
  rotationClusters: 0,
  quantitySkew: 0,
  personalization: null,
  examplesPerClient: null,
  seed: 1,
  dropout: 0,
  byzantine: 0,
  attack: 'mixed',
  defenses: true,
  workers: 2,
  init: null,
  replaceModel: false,
  pretrainExamples: 6000,
  localTestExamples: 20,
  localEvaluation: 0.1,
  overSelection: 1,
  minClients: null,
  deadlineSeconds: 600,
  compression: { kind: 'none' },
  server: null,
  differentialPrivacy: null,
  dpDelta: 1e-5,
};

/** The options with `init` decided. */
export type ResolvedSimulationOptions = SimulationOptions & { init: InitialModelKind };

/**
 * Where training starts. Against an existing coordinator the default is its current version;
 * replacing its live model with an untrained one needs `replaceModel`.
 */
function resolveInitialModel(options: SimulationOptions): InitialModelKind {
  const server = options.server;
  const init = options.init ?? (server ? 'current' : 'random');
  if (server && init === 'pretrained')
    throw new RangeError(
      `--init pretrained is the in-process coordinator's default model; with --server, training starts from its current version (--init current)`,
    );
  if (server && init === 'random' && !options.replaceModel)
    throw new RangeError(
      `--init random with --server would register an untrained 2NN as the live model of ${server.url}; ` +
        'add --replace-model to do that, or leave --init out to train from its current version',
    );
  if (options.replaceModel && !(server && init === 'random')) throw new RangeError('--replace-model applies only with --server and --init random');
  return init;
}

/** The options with their defaults, and what follows from them. */
export interface SimulationPlan {
  options: ResolvedSimulationOptions;
  /** Worker threads actually started (no more than clients). */
  workers: number;
  examplesPerClient: number;
  /** m = max(round(C * K), 1). */
  clientsPerRound: number;
  minClients: number;
  /** Per client: its attack, or null when it is honest. */
  attacks: (Attack | null)[];
}

/** Applies the defaults and checks the ranges; throws RangeError on an option out of range. */
export function planSimulation(partial: Partial<SimulationOptions>): SimulationPlan {
  const merged: SimulationOptions = { ...DEFAULT_SIMULATION_OPTIONS, ...partial };
  const options: ResolvedSimulationOptions = { ...merged, init: resolveInitialModel(merged) };
  const K = options.clients;
  if (!Number.isInteger(K) || K < 1) throw new RangeError(`clients must be a positive integer, got ${K}`);
  if (!(options.fraction >= 0 && options.fraction <= 1)) throw new RangeError(`fraction must be in [0, 1], got ${options.fraction}`);
  if (!(options.localEvaluation >= 0 && options.localEvaluation <= 1))
    throw new RangeError(`localEvaluation must be in [0, 1], got ${options.localEvaluation}`);
  if (!(options.dropout >= 0 && options.dropout < 1)) throw new RangeError(`dropout must be in [0, 1), got ${options.dropout}`);
  if (!(Number.isInteger(options.rotationClusters) && options.rotationClusters >= 0 && options.rotationClusters <= 4))
    throw new RangeError(`rotationClusters must be an integer in [0, 4], got ${options.rotationClusters}`);
  if (!(options.quantitySkew >= 0)) throw new RangeError(`quantitySkew must be >= 0, got ${options.quantitySkew}`);
  if (options.quantitySkew > 0 && options.partition !== 'iid')
    throw new RangeError('quantitySkew applies to the iid partition (shards have equal sizes by definition; dirichlet sizes already vary)');
  const attacks = assignAttacks(K, options.byzantine, options.attack, options.seed);
  const dp = options.differentialPrivacy;
  // DP rounds sample each client with probability q: q·K expected, their number random.
  const clientsPerRound = Math.max(Math.round((dp ? dp.samplingRate : options.fraction) * K), 1);
  return {
    options,
    workers: Math.max(1, Math.min(options.workers, K)),
    examplesPerClient: options.examplesPerClient ?? Math.floor(60_000 / K),
    clientsPerRound,
    minClients: options.minClients ?? (options.dropout > 0 || dp ? 1 : clientsPerRound),
    attacks,
  };
}
