/**
 * Socket.io event names and the typed event maps both sides use:
 * `Socket<ServerToClientEvents, ClientToServerEvents>` on the device, the reverse on the coordinator.
 * The payload types come from the message schemas (handshake.ts, round-messages.ts,
 * model-messages.ts), so a message has one definition that types and validates it.
 *
 * Opening a session (handshake.ts): handshake with a credential and the device's public key, then
 * `server:challenge` -> `client:proof` -> `server:welcome`.
 *
 * Flow of a round (Bonawitz et al. 2019): connected clients report eligibility; an operator starts a
 * round; the coordinator selects eligible clients and sends each a `round:configure` (plan + model
 * version); a client fetches the model if it lacks it, trains, and uploads its delta (`round:update`,
 * acknowledged); the coordinator folds accepted deltas into a running aggregate, commits a new
 * version, tells the participants (`round:closed`) and everyone (`model:published`).
 */
import type { Challenge, Proof, ProofResult, Welcome } from './handshake.js';
import type { EvaluationReport, EvaluationReportResult, ModelFetchRequest, ModelFetchResult, ModelPublished } from './model-messages.js';
import type { SecAggAck, SecAggAdvertise, SecAggMasked, SecAggRelay, SecAggReveal, SecAggRoster, SecAggShares, SecAggUnmask } from './secagg-messages.js';
import type { Abandon, ConditionsReport, RoundClosed, RoundConfiguration, UpdateRejected, UpdateResult, UpdateUpload } from './round-messages.js';

/** Events a client emits. */
export const ClientEvent = {
  /** The signed answer to `server:challenge`; acknowledged with a ProofResult. */
  proof: 'client:proof',
  /** Eligibility changed (idle, charging, unmetered). Sent on connect and on every change. */
  conditions: 'client:conditions',
  /** Fetch a model version; acknowledged with a ModelFetchResult. */
  fetchModel: 'model:fetch',
  /** Upload a weight delta for a round; acknowledged with an UpdateResult. */
  update: 'round:update',
  /** A selected client stops participating before uploading. */
  abandon: 'round:abandon',
  /**
   * Aggregate numbers of the local test of a new global model (never examples or labels). The
   * coordinator acknowledges with an EvaluationReportResult when asked to.
   */
  evaluation: 'model:evaluation',
  /** Secure rounds (secagg-messages.ts), each acknowledged with a SecAggAck: phase 1, the device's public keys (instead of `round:update`). */
  secAggAdvertise: 'secagg:advertise',
  /** Phase 2: sealed shares for its neighbours. */
  secAggShares: 'secagg:shares',
  /** Phase 3: the masked input. */
  secAggMasked: 'secagg:masked',
  /** Phase 4: the shares the unmasking needs. */
  secAggReveal: 'secagg:reveal',
} as const;

/** Events the coordinator emits. */
export const ServerEvent = {
  /** Sent once after the handshake: the device must prove it holds its key by signing this. */
  challenge: 'server:challenge',
  /** Sent once the proof verified: the session is open. */
  welcome: 'server:welcome',
  /** The client was selected for a round: here is the plan. */
  configure: 'round:configure',
  /** An upload was refused (also returned in the upload's acknowledgement). */
  updateRejected: 'round:update-rejected',
  /** A round the client was selected for ended. */
  roundClosed: 'round:closed',
  /** A new global model version was committed (broadcast to every client). */
  modelPublished: 'model:published',
  /** Secure rounds: the device's index and its neighbours' keys (after advertising). */
  secAggRoster: 'secagg:roster',
  /** Secure rounds: the sealed shares its neighbours sent it. */
  secAggRelay: 'secagg:relay',
  /** Secure rounds: which neighbours' masks to unmask. */
  secAggUnmask: 'secagg:unmask',
} as const;

/** Typed event maps for socket.io's generics: `Socket<ServerToClientEvents, ClientToServerEvents>`. */
export interface ServerToClientEvents {
  [ServerEvent.challenge]: (challenge: Challenge) => void;
  [ServerEvent.welcome]: (welcome: Welcome) => void;
  [ServerEvent.configure]: (configuration: RoundConfiguration) => void;
  [ServerEvent.updateRejected]: (rejection: UpdateRejected) => void;
  [ServerEvent.roundClosed]: (closed: RoundClosed) => void;
  [ServerEvent.modelPublished]: (published: ModelPublished) => void;
  [ServerEvent.secAggRoster]: (roster: SecAggRoster) => void;
  [ServerEvent.secAggRelay]: (relay: SecAggRelay) => void;
  [ServerEvent.secAggUnmask]: (request: SecAggUnmask) => void;
}
export interface ClientToServerEvents {
  [ClientEvent.proof]: (proof: Proof, ack: (result: ProofResult) => void) => void;
  [ClientEvent.conditions]: (report: ConditionsReport) => void;
  [ClientEvent.fetchModel]: (request: ModelFetchRequest, ack: (result: ModelFetchResult) => void) => void;
  [ClientEvent.update]: (upload: UpdateUpload, ack: (result: UpdateResult) => void) => void;
  [ClientEvent.abandon]: (abandon: Abandon) => void;
  [ClientEvent.evaluation]: (report: EvaluationReport, ack?: (result: EvaluationReportResult) => void) => void;
  [ClientEvent.secAggAdvertise]: (advertise: SecAggAdvertise, ack: (result: SecAggAck) => void) => void;
  [ClientEvent.secAggShares]: (shares: SecAggShares, ack: (result: SecAggAck) => void) => void;
  [ClientEvent.secAggMasked]: (masked: SecAggMasked, ack: (result: SecAggAck) => void) => void;
  [ClientEvent.secAggReveal]: (reveal: SecAggReveal, ack: (result: SecAggAck) => void) => void;
}
