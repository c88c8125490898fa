/**
 * The device's identity: an ECDSA P-256 key pair made with WebCrypto and kept in the store (the
 * private key never leaves the device). The client id is the public key's RFC 7638 thumbprint, so
 * no other device can claim it: at every connection the device signs the coordinator's fresh
 * challenge (protocol/handshake.ts) to prove it holds the key.
 */
import { base64url, publicKeyJwkSchema, thumbprintInput, type PublicKeyJwk } from '../protocol/device-key.js';
import { bytesOf, proofMessage } from '../protocol/handshake.js';
import { subtleCrypto, type CryptoKeyLike, type CryptoKeyPairLike } from './runtime.js';
import type { KeyStore } from './store.js';

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNATURE_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** What an app's backend needs to bind a device token to this device (`cnf.jkt` = clientId). */
export interface DeviceIdentityInfo {
  /** The RFC 7638 SHA-256 thumbprint of the public key, base64url: the client id and the `jkt`. */
  clientId: string;
  publicKey: PublicKeyJwk;
}

export class DeviceIdentity implements DeviceIdentityInfo {
  private constructor(
    private readonly keys: CryptoKeyPairLike,
    readonly publicKey: PublicKeyJwk,
    readonly clientId: string,
  ) {}

  /**
   * The store's key pair, or a new one saved there first (a store that writes keys out, like the
   * file store, gets an extractable private key; the others keep it non-extractable).
   */
  static async load(store: KeyStore): Promise<DeviceIdentity> {
    const stored = await store.loadKeyPair();
    if (stored && isSigningKeyPair(stored)) return DeviceIdentity.fromKeyPair(stored);
    const keys = await subtleCrypto().generateKey(KEY_ALGORITHM, store.exportsPrivateKey === true, ['sign', 'verify']);
    await store.saveKeyPair(keys);
    return DeviceIdentity.fromKeyPair(keys);
  }

  static async fromKeyPair(keys: CryptoKeyPairLike): Promise<DeviceIdentity> {
    const { kty, crv, x, y } = await subtleCrypto().exportKey('jwk', keys.publicKey);
    const publicKey = publicKeyJwkSchema.parse({ kty, crv, x, y });
    return new DeviceIdentity(keys, publicKey, await jwkThumbprint(publicKey));
  }

  /** The signature of this connection's challenge (IEEE P1363 r || s, as WebCrypto makes it). */
  async prove(challenge: ArrayBuffer | Uint8Array): Promise<Uint8Array> {
    const signature = await subtleCrypto().sign(SIGNATURE_ALGORITHM, this.keys.privateKey, proofMessage(bytesOf(challenge), this.clientId));
    return new Uint8Array(signature);
  }

  get info(): DeviceIdentityInfo {
    return { clientId: this.clientId, publicKey: { ...this.publicKey } };
  }
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url). */
export async function jwkThumbprint(jwk: PublicKeyJwk): Promise<string> {
  return base64url(new Uint8Array(await subtleCrypto().digest('SHA-256', thumbprintInput(jwk))));
}

/** A stored pair is used only when it is still an ECDSA P-256 signing pair (else a new identity is made). */
function isSigningKeyPair(keys: CryptoKeyPairLike): boolean {
  const isEcdsa = (key: CryptoKeyLike | undefined, type: string): boolean =>
    key?.type === type && key.algorithm.name === KEY_ALGORITHM.name && (key.algorithm as { namedCurve?: string }).namedCurve === KEY_ALGORITHM.namedCurve;
  return isEcdsa(keys.privateKey, 'private') && isEcdsa(keys.publicKey, 'public');
}
