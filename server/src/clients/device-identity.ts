/**
 * Who a device is, checked in two steps (protocol/handshake.ts). The handshake (`admit`): a
 * credential (the shared client token, or with enrolment a device token bound to the device key),
 * the protocol version, and the device's public key, from which the client id is derived (its RFC
 * 7638 thumbprint). Then, at every connection, proof of possession (`verifyProof`): the device signs
 * a fresh random challenge. Nothing is kept between connections, so any coordinator process can
 * check any device, and a signature seen once is worth nothing later.
 */
import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import {
  CHALLENGE_BYTES,
  PROTOCOL_VERSION,
  bytesOf,
  handshakeAuthSchema,
  handshakeFieldsSchema,
  proofMessage,
  proofSchema,
  thumbprintInput,
  type PublicKeyJwk,
} from '@flock/client-sdk/protocol';
import { tokenMatches } from '../auth/auth.js';
import type { FlockConfig } from '../config/config.js';
import { DeviceTokenVerifier } from './device-tokens.js';
import { HandshakeError } from './handshake-error.js';

/** A device whose handshake was accepted; it still has to prove it holds the key. */
export interface AdmittedDevice {
  /** The public key's RFC 7638 thumbprint. */
  clientId: string;
  publicKey: KeyObject;
  /** Keyed hash of the enrolled app user; null without enrolment. */
  userKey: string | null;
}

const { token: tokenSchema, publicKey: publicKeySchema } = handshakeAuthSchema.shape;

export class DeviceAdmission {
  private readonly deviceTokens: DeviceTokenVerifier | null;

  constructor(private readonly config: Pick<FlockConfig, 'clientToken' | 'enrolment'>) {
    this.deviceTokens = config.enrolment ? new DeviceTokenVerifier(config.enrolment) : null;
  }

  /**
   * Checks a handshake's `auth` (any JSON value may arrive) and throws a HandshakeError with the
   * first problem, in this order: the credential (nobody learns more without one), the protocol
   * version, the public key, the token's binding to that key.
   */
  async admit(auth: unknown): Promise<AdmittedDevice> {
    const read = handshakeFieldsSchema.safeParse(auth);
    const fields = read.success ? read.data : {};
    const token = tokenSchema.safeParse(fields.token);
    if (!token.success) throw new HandshakeError('unauthorized', 'a client token or device token is required');
    const claims = await this.checkCredential(token.data);
    if (fields.protocolVersion !== PROTOCOL_VERSION) {
      throw new HandshakeError('protocol_mismatch', `coordinator speaks protocol ${PROTOCOL_VERSION}, client ${String(fields.protocolVersion).slice(0, 16)}`);
    }
    const jwk = publicKeySchema.safeParse(fields.publicKey);
    if (!jwk.success) throw new HandshakeError('invalid_public_key', jwk.error.issues[0]?.message ?? 'invalid public key');
    const publicKey = importPublicKey(jwk.data);
    const clientId = thumbprint(jwk.data);
    if (claims && claims.keyThumbprint !== clientId)
      throw new HandshakeError('token_key_mismatch', 'the device token is not bound to this device key (cnf.jkt)');
    return { clientId, publicKey, userKey: claims?.userKey ?? null };
  }

  /** The shared client token without enrolment; with it, a verified device token (whose claims are returned). */
  private async checkCredential(token: string): Promise<{ userKey: string; keyThumbprint: unknown } | null> {
    const isClientToken = tokenMatches(token, this.config.clientToken);
    if (!this.deviceTokens) {
      if (isClientToken) return null;
      throw new HandshakeError('unauthorized', 'a valid client token is required');
    }
    if (isClientToken) throw new HandshakeError('enrolment_required', 'enrolment is on: devices need a device token from the app, not the client token');
    return this.deviceTokens.verify(token);
  }
}

/** Fresh random bytes for one connection's proof. */
export function newChallenge(): Buffer {
  return randomBytes(CHALLENGE_BYTES);
}

/** Whether `proof` (any value may arrive) is the device key's signature of this connection's challenge. */
export function verifyProof(device: AdmittedDevice, challenge: Uint8Array, proof: unknown): boolean {
  const parsed = proofSchema.safeParse(proof);
  if (!parsed.success) return false;
  try {
    return verify('sha256', proofMessage(challenge, device.clientId), { key: device.publicKey, dsaEncoding: 'ieee-p1363' }, bytesOf(parsed.data.signature));
  } catch {
    return false;
  }
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url): the client id. */
export function thumbprint(jwk: PublicKeyJwk): string {
  return createHash('sha256').update(thumbprintInput(jwk)).digest('base64url');
}

/** node:crypto refuses coordinates that are not a point of the curve. */
function importPublicKey(jwk: PublicKeyJwk): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw new HandshakeError('invalid_public_key', 'the public key is not a P-256 point');
  }
}
