/**
 * The secure part of a secure round on the device (protocol in secagg/device-session.ts, messages
 * in protocol/secagg-messages.ts): instead of uploading its delta, the trained device advertises
 * keys, deals shares to its neighbours, sends its masked input and reveals the shares the
 * unmasking needs. Each wait ends with the coordinator's message, the round's end (the job is
 * cancelled) or a timeout past the phase's deadline.
 */
import { ClientEvent } from '../protocol/events.js';
import type { RoundConfiguration, UpdateUpload } from '../protocol/round-messages.js';
import type { SecAggAck } from '../protocol/secagg-messages.js';
import { asFloat32 } from '../protocol/weights.js';
import { SecAggDeviceSession } from '../secagg/device-session.js';
import type { Connection, SecAggOutgoing } from './connection.js';
import { FlockClientError } from './errors.js';
import type { Job } from './job.js';

/** How long past a phase's deadline the device waits for the coordinator's next message. */
const GRACE_MS = 60_000;

export interface SecureRoundContext {
  job: Job;
  connection: Pick<Connection, 'connected' | 'secAgg' | 'secAggInbox'>;
}

/** What the device sent, for its `uploaded` event. */
export interface SecureRoundOutcome {
  /** Bytes the device sent in the four phases (keys, sealed shares, masked input, revealed shares). */
  bytesUp: number;
  /** Bytes of the coordinator's three messages to it. */
  bytesDown: number;
  /** null: every phase done; else the phase where the coordinator refused a message, with why. */
  refused: { event: string; ack: SecAggAck & { accepted: false } } | null;
  /** The round ended (or the device left) before unmasking asked for its shares. */
  stopped: boolean;
}

function byteLength(data: ArrayBuffer | Uint8Array): number {
  return data.byteLength;
}

export async function runSecureAggregation(configuration: RoundConfiguration, upload: UpdateUpload, context: SecureRoundContext): Promise<SecureRoundOutcome> {
  const { job, connection } = context;
  const { roundId, modelVersion, secureAggregation } = configuration;
  if (!secureAggregation) throw new FlockClientError('protocol', 'the round is not a secure round');
  const session = await SecAggDeviceSession.create(roundId, secureAggregation.keyAgreement);
  const outcome: SecureRoundOutcome = { bytesUp: 0, bytesDown: 0, refused: null, stopped: false };
  const stopped = (): boolean => job.cancelled || !connection.connected;
  const send = async (message: SecAggOutgoing, bytes: number): Promise<boolean> => {
    // Disconnected: socket.io would buffer the message until a reconnection; the round has dropped this device by then.
    if (stopped()) {
      outcome.stopped = true;
      return false;
    }
    outcome.bytesUp += bytes;
    const ack = await connection.secAgg(message);
    if (!ack.accepted) outcome.refused = { event: message.event, ack };
    return ack.accepted;
  };
  const keys = session.publicKeys();
  if (!(await send({ event: ClientEvent.secAggAdvertise, payload: { roundId, modelVersion, ...keys } }, keys.encryptionKey.byteLength * 2))) return outcome;

  const roster = await connection.secAggInbox.next('roster', roundId, configuration.deadlineAt - Date.now() + GRACE_MS, stopped);
  if (!roster) return { ...outcome, stopped: true };
  outcome.bytesDown += byteLength(roster.neighboursBytes) + 4 * roster.neighbours.length;
  const shares = await session.shareKeys(roster);
  const sharesBytes = byteLength(shares.recipientsBytes) + 4 * shares.recipients.length;
  if (!(await send({ event: ClientEvent.secAggShares, payload: shares }, sharesBytes))) return outcome;

  const relay = await connection.secAggInbox.next('relay', roundId, roster.deadlineAt - Date.now() + GRACE_MS, stopped);
  if (!relay) return { ...outcome, stopped: true };
  outcome.bytesDown += byteLength(relay.sendersBytes) + 4 * relay.senders.length;
  const delta = asFloat32(upload.delta.data);
  const masked = await session.maskInput(relay, { delta, numExamples: upload.numExamples, trainLoss: upload.trainLoss });
  if (!(await send({ event: ClientEvent.secAggMasked, payload: { roundId, data: new Uint8Array(masked.buffer) } }, masked.byteLength))) return outcome;

  const request = await connection.secAggInbox.next('unmask', roundId, relay.deadlineAt - Date.now() + GRACE_MS, stopped);
  if (!request) return { ...outcome, stopped: true };
  outcome.bytesDown += (request.survivors.length + request.dropped.length) * 4;
  const reveal = session.unmask(request);
  const revealBytes = byteLength(reveal.selfMaskBytes) + byteLength(reveal.maskKeyBytes) + 4 * (reveal.selfMask.length + reveal.maskKey.length);
  await send({ event: ClientEvent.secAggReveal, payload: reveal }, revealBytes);
  return outcome;
}

/** A refusal as the client's error. */
export function refusalError(roundId: string, refused: NonNullable<SecureRoundOutcome['refused']>): FlockClientError {
  return new FlockClientError('upload_rejected', `secure round ${roundId}: ${refused.event} refused (${refused.ack.reason}): ${refused.ack.message}`, {
    roundId,
  });
}
