/**
 * The cryptographic primitives of secure aggregation, all from WebCrypto (`globalThis.crypto.subtle`,
 * the same API in browsers and Node >= 20): ECDH on P-256 or X25519 for key agreement, HKDF-SHA-256 to turn
 * a shared secret into keys, AES-GCM to encrypt shares for one neighbour, AES-CTR as the PRG that
 * expands a 32-byte seed into a mask. Nothing here is home-made cryptography.
 */

import { PUBLIC_KEY_BYTES, type KeyAgreement } from '../protocol/secagg-messages.js';
import { base64url, fromBase64url, randomBytes, subtle, utf8, type WebCryptoJwk, type WebCryptoKey } from './webcrypto.js';

export { randomBytes } from './webcrypto.js';

const ALGORITHMS = { 'P-256': { name: 'ECDH', namedCurve: 'P-256' }, X25519: { name: 'X25519' } } as const;
/** The private scalar, on either curve. */
export const PRIVATE_KEY_BYTES = 32;
export const SEED_BYTES = 32;
const IV_BYTES = 12;
/** AES-GCM's IV and tag around a plaintext. */
export const SEALED_OVERHEAD = IV_BYTES + 16;

/** HKDF labels: one key per purpose, so no key serves two. */
export const KeyPurpose = {
  pairwiseMask: 'flock-secagg/v1/pairwise-mask',
  shareEncryption: 'flock-secagg/v1/share-encryption',
} as const;
export type KeyPurpose = (typeof KeyPurpose)[keyof typeof KeyPurpose];

export interface AgreementKeyPair {
  privateKey: WebCryptoKey;
  /** Raw public key (PUBLIC_KEY_BYTES of its key agreement). */
  publicKey: Uint8Array;
}

/** A fresh key pair whose private scalar can be exported (to be secret-shared). */
export async function generateAgreementKeyPair(keyAgreement: KeyAgreement): Promise<AgreementKeyPair> {
  let pair: { publicKey: WebCryptoKey; privateKey: WebCryptoKey };
  try {
    pair = await subtle().generateKey(ALGORITHMS[keyAgreement], true, ['deriveBits']);
  } catch (error) {
    throw new Error(`this platform's WebCrypto cannot generate ${keyAgreement} keys (${(error as Error).message}); the round needs ${keyAgreement}`);
  }
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(await subtle().exportKey('raw', pair.publicKey)) };
}

/** The private scalar d (32 bytes) of an exportable key. */
export async function exportPrivateScalar(privateKey: WebCryptoKey): Promise<Uint8Array> {
  const jwk = await subtle().exportKey('jwk', privateKey);
  if (!jwk.d) throw new Error('the private key has no scalar');
  const scalar = fromBase64url(jwk.d);
  if (scalar.length !== PRIVATE_KEY_BYTES) throw new Error(`a private scalar has ${PRIVATE_KEY_BYTES} bytes, not ${scalar.length}`);
  return scalar;
}

/** Rebuilds a private key from its scalar and its public key (unmasking a dropped device). */
export async function importPrivateScalar(scalar: Uint8Array, publicKey: Uint8Array, keyAgreement: KeyAgreement): Promise<WebCryptoKey> {
  checkPublicKey(publicKey, keyAgreement);
  const jwk: WebCryptoJwk =
    keyAgreement === 'P-256'
      ? { kty: 'EC', crv: 'P-256', d: base64url(scalar), x: base64url(publicKey.subarray(1, 33)), y: base64url(publicKey.subarray(33, 65)), ext: false }
      : { kty: 'OKP', crv: 'X25519', d: base64url(scalar), x: base64url(publicKey), ext: false };
  return subtle().importKey('jwk', jwk, ALGORITHMS[keyAgreement], false, ['deriveBits']);
}

function checkPublicKey(publicKey: Uint8Array, keyAgreement: KeyAgreement): void {
  if (publicKey.length !== PUBLIC_KEY_BYTES[keyAgreement] || (keyAgreement === 'P-256' && publicKey[0] !== 0x04)) {
    throw new RangeError(`not a raw ${keyAgreement} public key`);
  }
}

/** Imports a peer's raw public key; throws on a P-256 point not on the curve (see checkPeerKey for X25519). */
export async function importPublicKey(publicKey: Uint8Array, keyAgreement: KeyAgreement): Promise<WebCryptoKey> {
  checkPublicKey(publicKey, keyAgreement);
  return subtle().importKey('raw', publicKey, ALGORITHMS[keyAgreement], false, []);
}

let x25519Probe: Promise<WebCryptoKey> | null = null;

/**
 * Checks a peer's advertised key before anyone agrees with it: P-256 import checks the point is on
 * the curve; X25519 import takes any 32 bytes, so one agreement with a throwaway key runs, which
 * WebCrypto refuses for the small-order points (their shared secret is all zeros, RFC 7748 §6.1).
 * Otherwise a device could advertise such a point and make each neighbour's agreement fail.
 */
export async function checkPeerKey(publicKey: Uint8Array, keyAgreement: KeyAgreement): Promise<void> {
  const peer = await importPublicKey(publicKey, keyAgreement);
  if (keyAgreement === 'P-256') return;
  x25519Probe ??= generateAgreementKeyPair('X25519').then((pair) => pair.privateKey);
  await subtle().deriveBits({ name: 'X25519', public: peer }, await x25519Probe, 256);
}

/**
 * ECDH, then HKDF-SHA-256 bound to the round (salt) and the purpose (info): 32 bytes that both
 * ends compute alike.
 */
export async function agreeKey(privateKey: WebCryptoKey, peerPublicKey: WebCryptoKey, roundId: string, purpose: KeyPurpose): Promise<Uint8Array> {
  const shared = await subtle().deriveBits({ name: privateKey.algorithm.name === 'X25519' ? 'X25519' : 'ECDH', public: peerPublicKey }, privateKey, 256);
  const hkdfKey = await subtle().importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  const derived = await subtle().deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: utf8(roundId), info: utf8(purpose) }, hkdfKey, 256);
  return new Uint8Array(derived);
}

/** AES-256-GCM with a random IV, authenticated with `associated` (the round): iv | ciphertext | tag. */
export async function seal(key: Uint8Array, plaintext: Uint8Array, associated: Uint8Array): Promise<Uint8Array> {
  const aesKey = await subtle().importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  const iv = randomBytes(IV_BYTES);
  const ciphertext = await subtle().encrypt({ name: 'AES-GCM', iv: iv, additionalData: associated }, aesKey, plaintext);
  const sealed = new Uint8Array(IV_BYTES + ciphertext.byteLength);
  sealed.set(iv);
  sealed.set(new Uint8Array(ciphertext), IV_BYTES);
  return sealed;
}

/** Opens what seal() produced; throws when it was altered or sealed under another key. */
export async function open(key: Uint8Array, sealed: Uint8Array, associated: Uint8Array): Promise<Uint8Array> {
  if (sealed.length < SEALED_OVERHEAD) throw new RangeError('sealed data too short');
  const aesKey = await subtle().importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  const plaintext = await subtle().decrypt(
    { name: 'AES-GCM', iv: sealed.subarray(0, IV_BYTES), additionalData: associated },
    aesKey,
    sealed.subarray(IV_BYTES),
  );
  return new Uint8Array(plaintext);
}

/**
 * The PRG: `length` pseudo-random values of Z_2^32 from a 32-byte seed, AES-256-CTR's keystream
 * (the encryption of zeros from counter 0). Each seed expands to one mask only.
 */
export async function expandMask(seed: Uint8Array, length: number): Promise<Uint32Array> {
  if (seed.length !== SEED_BYTES) throw new RangeError(`a seed has ${SEED_BYTES} bytes`);
  const key = await subtle().importKey('raw', seed, 'AES-CTR', false, ['encrypt']);
  const stream = await subtle().encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 64 }, key, new Uint8Array(length * 4));
  return new Uint32Array(stream);
}
