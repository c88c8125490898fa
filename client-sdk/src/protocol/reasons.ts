/**
 * Stable reason codes. They appear in error events, API responses and metrics labels, so they are
 * part of the protocol: add new ones, never rename.
 */

/** Why the coordinator refused a client's upload. */
export const REJECTION_REASONS = [
  'malformed', // the payload does not match the protocol schema
  'payload_too_large', // the upload exceeds the coordinator's size limit
  'round_not_open', // no such round, or it is not collecting updates
  'round_closed', // the round already committed, failed or was aborted (a straggler)
  'not_selected', // this client was not selected for the round
  'duplicate_upload', // this client already uploaded for the round (replay)
  'version_mismatch', // the delta was computed against another model version
  'shape_mismatch', // tensor count or shapes differ from the model's
  'non_finite', // NaN or Infinity in the delta, loss or counts
  'norm_exceeded', // the delta's L2 norm is above the round's bound
  'compression_mismatch', // the delta's encoding is not the one the round's plan names, or carries more values than it allows
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

/** Why the coordinator refused a device's evaluation report (`model:evaluation`); counted, never summarized. */
export const EVALUATION_REFUSAL_REASONS = [
  'malformed', // the report does not match the protocol schema (bounds included)
  'unknown_version', // no such model version
  'no_round', // the version was not committed by a round (initial, registered, rollback): no summary counts it
  'not_offered', // the version was never offered to this device (see docs/SECURITY.md)
  'duplicate_report', // this device already reported this version (one report per device and version, stored)
] as const;
export type EvaluationRefusalReason = (typeof EVALUATION_REFUSAL_REASONS)[number];

/** Why a selected client stopped before uploading (told to the coordinator, counted as dropped). */
export const ABANDON_REASONS = [
  'conditions_changed', // unplugged, left the unmetered network or the device became busy
  'no_data', // no local examples to train on
  'training_failed', // training threw
  'deadline', // the client could not finish before the round deadline
  'stopped', // the app stopped the client
] as const;
export type AbandonReason = (typeof ABANDON_REASONS)[number];

/** Why a client says it is not eligible to train right now. */
export const INELIGIBILITY_REASONS = [
  'not_idle',
  'not_charging',
  'metered_network',
  'unknown_conditions', // a detector answered "unknown" and the policy treats that as not eligible
  'no_data',
  'stopped',
] as const;
export type IneligibilityReason = (typeof INELIGIBILITY_REASONS)[number];

/**
 * Why the coordinator refused a device's session: in the handshake (socket.io `connect_error`
 * message), or in the acknowledgement of its proof of possession (the socket is then closed).
 */
export const CONNECT_ERRORS = [
  'unauthorized', // no valid credential: wrong client token, or a device token with a bad signature or format
  'protocol_mismatch', // the device speaks another protocol version
  'invalid_client_id', // protocol 1 only (self-chosen ids); no longer sent
  'invalid_public_key', // the handshake's public key is missing or not a P-256 point
  'invalid_proof', // the answer to the challenge is malformed or its signature does not verify (forged, replayed)
  'proof_timeout', // no answer to the challenge in time
  'enrolment_required', // enrolment is on and the device presented the shared client token
  'token_expired', // the device token has expired: fetch a fresh one
  'token_claims_invalid', // the device token's issuer, audience, subject or not-before time is wrong
  'token_key_mismatch', // the device token is not bound to this device's key (cnf.jkt)
  'too_many_connections', // the client's address holds as many connections as the coordinator allows (FLOCK_MAX_CONNECTIONS_PER_ADDRESS)
  'coordinator_busy', // the coordinator is overloaded (event-loop delay above FLOCK_BUSY_EVENT_LOOP_DELAY_MS): come back after the refusal's retryAfterMs
] as const;
export type ConnectError = (typeof CONNECT_ERRORS)[number];

/**
 * Why the coordinator refused to commit a round's aggregate (the round fails with
 * `commit refused (<reason>): ...` and the global model stays as it was).
 */
export const COMMIT_REFUSAL_REASONS = [
  'non_finite_weights', // the new weights would contain NaN or an infinity
  'update_too_large', // the L2 norm of the change (new - old weights) is above the coordinator's limit
] as const;
export type CommitRefusalReason = (typeof COMMIT_REFUSAL_REASONS)[number];
