/**
 * Enrolment: device tokens are JWTs from the app's backend, verified with `jose` against the keys
 * the operator configured, with the expected issuer and audience, and bound to the device's key
 * (`cnf.jkt`, RFC 7800 / RFC 9449 style, equal to the client id: the key's RFC 7638 thumbprint),
 * so a leaked token is useless with another key. The app user (`sub`) is kept only as a keyed hash.
 */
import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import type { EnrolmentConfig } from '../config/config.js';
import { HandshakeError } from './handshake-error.js';

/** Clock skew tolerated on `exp` and `nbf`, in seconds. */
const CLOCK_TOLERANCE_S = 30;

/** What an enrolled device's token says: the app user (as a keyed hash) and the key it is bound to. */
export interface DeviceTokenClaims {
  userKey: string;
  /** `cnf.jkt`: must equal the client id (the device key's thumbprint); unknown until compared. */
  keyThumbprint: unknown;
}

export class DeviceTokenVerifier {
  private readonly keys: JWTVerifyGetKey;

  /** Throws (at start-up) when the configured keys cannot be read. */
  constructor(private readonly config: EnrolmentConfig) {
    this.keys = 'jwksUrl' in config.keys ? createRemoteJWKSet(new URL(config.keys.jwksUrl)) : createLocalJWKSet(parseKeySet(config.keys.keyText));
  }

  /** Verifies a device token's signature and claims; throws a HandshakeError. */
  async verify(token: string): Promise<DeviceTokenClaims> {
    let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        requiredClaims: ['sub', 'exp'],
        clockTolerance: CLOCK_TOLERANCE_S,
      }));
    } catch (error) {
      throw refusalOf(error);
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new HandshakeError('token_claims_invalid', 'the device token has no subject');
    return {
      userKey: createHmac('sha256', this.config.userKeySecret).update(payload.sub).digest('base64url'),
      keyThumbprint: (payload.cnf as { jkt?: unknown } | null | undefined)?.jkt,
    };
  }
}

/** jose's failure as a handshake refusal: expiry and wrong claims have their own reasons, the rest is not a credential. */
function refusalOf(error: unknown): HandshakeError {
  if (error instanceof errors.JWTExpired) return new HandshakeError('token_expired', 'the device token has expired');
  if (error instanceof errors.JWTClaimValidationFailed)
    return new HandshakeError('token_claims_invalid', `device token claim '${error.claim}': ${error.reason}`);
  return new HandshakeError('unauthorized', 'the device token does not verify');
}

/** Key text from the configuration: a PEM public key, a JWK or a JWKS. */
export function parseKeySet(text: string): JSONWebKeySet {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) return { keys: [createPublicKey(trimmed).export({ format: 'jwk' })] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    throw new Error('enrolment key: expected a PEM public key, a JWK or a JWKS (JSON)');
  }
  const set = Array.isArray((parsed as JSONWebKeySet).keys) ? (parsed as JSONWebKeySet) : { keys: [parsed as JWK] };
  for (const key of set.keys) {
    if ('d' in key || key.kty === 'oct') throw new Error('enrolment key: give public keys only (no private or symmetric keys)');
    createPublicKey({ key: key as JsonWebKey, format: 'jwk' }); // throws on a key node cannot use
  }
  return set;
}
