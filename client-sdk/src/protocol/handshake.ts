/**
 * Opening a session, in two steps. (1) The socket.io handshake (`io(url, { auth })`): a credential
 * (the shared client token, or with enrolment a device token bound to the key) and the device's
 * public key; the coordinator derives the client id from the key. Refusals arrive as
 * `connect_error` with one of CONNECT_ERRORS (reasons.ts) as the message. (2) Proof of possession:
 * the coordinator sends a fresh random `server:challenge`, the device signs `proofMessage` with its
 * private key and answers `client:proof`. Only then is the device registered and welcomed
 * (`server:welcome`); before that, nothing it sends is acted on.
 */
import { z } from 'zod';
import { asciiBytes, publicKeyJwkSchema } from './device-key.js';
import { modelVersionSchema } from './model-messages.js';
import { CONNECT_ERRORS } from './reasons.js';
import { binarySchema } from './weights.js';

/** 3: top-k uploads as 4-bit codes with Rice-coded gaps (2: int8 values, LEB128 gaps; device keys and proof of possession since 2; 1: self-chosen client ids). */
export const PROTOCOL_VERSION = 3;

/** The longest wait a `coordinator_busy` refusal may ask for. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * The `data` of a `connect_error` refusing a session because the coordinator is overloaded: when
 * to come back (pace steering for arrivals; Bonawitz et al. 2019).
 */
export const busyRefusalSchema = z.object({
  code: z.literal('coordinator_busy'),
  retryAfterMs: z.number().int().min(0).max(MAX_RETRY_AFTER_MS),
});
export type BusyRefusal = z.infer<typeof busyRefusalSchema>;

/** A client id is the RFC 7638 thumbprint of the device's key: SHA-256, base64url (device-key.ts). */
export const clientIdSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a client id is a key thumbprint: 43 base64url characters');

/** Longest credential accepted: the shared token, or a device token (a JWT with a few claims). */
export const MAX_CREDENTIAL_LENGTH = 4096;

/** Handshake `auth` object: `io(url, { auth })`. */
export const handshakeAuthSchema = z.object({
  /** The shared client token, or with enrolment the device token (a JWT from the app's backend). */
  token: z.string().min(1).max(MAX_CREDENTIAL_LENGTH),
  /** The device's public key; the client id is its thumbprint. */
  publicKey: publicKeyJwkSchema,
  protocolVersion: z.number().int(),
  sdkVersion: z.string().max(64).optional(),
});
export type HandshakeAuth = z.infer<typeof handshakeAuthSchema>;

/**
 * The handshake as the coordinator first reads it: an object, each field still unchecked, so that
 * each is then checked with its schema above in turn and a refusal names the first problem.
 */
export const handshakeFieldsSchema = z.object({ token: z.unknown().optional(), publicKey: z.unknown().optional(), protocolVersion: z.unknown().optional() });

export const CHALLENGE_BYTES = 32;
/** An ECDSA P-256 signature in the IEEE P1363 form WebCrypto produces: r || s. */
export const SIGNATURE_BYTES = 64;

function binaryOfLength(bytes: number) {
  return binarySchema.refine((value) => value.byteLength === bytes, `expected ${bytes} bytes`);
}

/** `server:challenge`: fresh random bytes, one per connection. */
export const challengeSchema = z.object({ challenge: binaryOfLength(CHALLENGE_BYTES) });
export type Challenge = z.infer<typeof challengeSchema>;

/** `client:proof`: the device's signature of `proofMessage(challenge, clientId)`. */
export const proofSchema = z.object({ signature: binaryOfLength(SIGNATURE_BYTES) });
export type Proof = z.infer<typeof proofSchema>;

/** The acknowledgement of `client:proof`; after a refusal the coordinator closes the socket. */
export const proofResultSchema = z.discriminatedUnion('accepted', [
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.enum(CONNECT_ERRORS), message: z.string() }),
]);
export type ProofResult = z.infer<typeof proofResultSchema>;

/** Says what a signature is for, so that it can mean nothing else. */
const PROOF_CONTEXT = 'flock device proof';

/**
 * What the device signs: the context, the protocol version, its client id and the challenge. A
 * signature answers one challenge of one connection: replaying it elsewhere proves nothing.
 */
export function proofMessage(challenge: Uint8Array, clientId: string): Uint8Array {
  const prefix = asciiBytes(`${PROOF_CONTEXT}\nprotocol ${PROTOCOL_VERSION}\nclient ${clientId}\nchallenge `);
  const message = new Uint8Array(prefix.length + challenge.length);
  message.set(prefix);
  message.set(challenge, prefix.length);
  return message;
}

/** Binary as socket.io delivers it, viewed as bytes (no copy). */
export function bytesOf(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

export const welcomeSchema = z.object({
  clientId: clientIdSchema,
  protocolVersion: z.number().int(),
  /** Latest committed global model version, or null before the first one exists. */
  currentModelVersion: modelVersionSchema.nullable(),
  /** Largest upload the coordinator accepts, in bytes of weight data. */
  maxUploadBytes: z.number().positive(),
});
export type Welcome = z.infer<typeof welcomeSchema>;
