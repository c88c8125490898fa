/**
 * The WebCrypto subset secure aggregation uses, typed here because the SDK's core compiles without
 * DOM or Node typings (tsconfig.core.json). Browsers, Node >= 19 and Deno provide it as
 * `globalThis.crypto`; React Native needs a WebCrypto polyfill.
 */

/** A WebCrypto key, opaque here. */
export interface WebCryptoKey {
  readonly type: string;
  readonly algorithm: { readonly name: string };
}

export interface WebCryptoJwk {
  kty?: string;
  crv?: string;
  d?: string;
  x?: string;
  y?: string;
  ext?: boolean;
  key_ops?: string[];
}

type Algorithm =
  | 'HKDF'
  | 'AES-GCM'
  | 'AES-CTR'
  | { name: 'ECDH'; namedCurve: 'P-256' }
  | { name: 'X25519' }
  | { name: 'ECDH' | 'X25519'; public: WebCryptoKey }
  | { name: 'HKDF'; hash: 'SHA-256'; salt: Uint8Array; info: Uint8Array }
  | { name: 'AES-GCM'; iv: Uint8Array; additionalData: Uint8Array }
  | { name: 'AES-CTR'; counter: Uint8Array; length: number };

export interface WebSubtle {
  generateKey(algorithm: Algorithm, extractable: boolean, usages: readonly string[]): Promise<{ publicKey: WebCryptoKey; privateKey: WebCryptoKey }>;
  exportKey(format: 'raw', key: WebCryptoKey): Promise<ArrayBuffer>;
  exportKey(format: 'jwk', key: WebCryptoKey): Promise<WebCryptoJwk>;
  importKey(format: 'raw', keyData: Uint8Array | ArrayBuffer, algorithm: Algorithm, extractable: boolean, usages: readonly string[]): Promise<WebCryptoKey>;
  importKey(format: 'jwk', keyData: WebCryptoJwk, algorithm: Algorithm, extractable: boolean, usages: readonly string[]): Promise<WebCryptoKey>;
  deriveBits(algorithm: Algorithm, key: WebCryptoKey, length: number): Promise<ArrayBuffer>;
  encrypt(algorithm: Algorithm, key: WebCryptoKey, data: Uint8Array): Promise<ArrayBuffer>;
  decrypt(algorithm: Algorithm, key: WebCryptoKey, data: Uint8Array): Promise<ArrayBuffer>;
}

interface Host {
  crypto?: { subtle?: WebSubtle; getRandomValues?<T extends Uint8Array>(array: T): T };
  TextEncoder?: new () => { encode(text: string): Uint8Array };
}

const host = globalThis as unknown as Host;

export function subtle(): WebSubtle {
  const found = host.crypto?.subtle;
  if (!found) throw new Error('secure aggregation needs WebCrypto (globalThis.crypto.subtle): https or localhost in browsers, Node >= 19, or a polyfill');
  return found;
}

export function randomBytes(length: number): Uint8Array {
  const crypto = host.crypto;
  if (!crypto?.getRandomValues) throw new Error('secure aggregation needs crypto.getRandomValues');
  return crypto.getRandomValues(new Uint8Array(length));
}

export function utf8(text: string): Uint8Array {
  if (!host.TextEncoder) throw new Error('secure aggregation needs TextEncoder');
  return new host.TextEncoder().encode(text);
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** base64url without padding (JWK's encoding). */
export function base64url(data: Uint8Array): string {
  let text = '';
  for (let i = 0; i < data.length; i += 3) {
    const chunk = (data[i]! << 16) | ((data[i + 1] ?? 0) << 8) | (data[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((data.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) text += ALPHABET[(chunk >> (18 - 6 * j)) & 63];
  }
  return text;
}

export function fromBase64url(text: string): Uint8Array {
  const bytes = new Uint8Array(Math.floor((text.length * 6) / 8));
  let buffer = 0;
  let bits = 0;
  let out = 0;
  for (const char of text) {
    const value = ALPHABET.indexOf(char);
    if (value < 0) throw new RangeError('not base64url');
    buffer = (buffer << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[out++] = (buffer >> bits) & 0xff;
    }
  }
  return bytes;
}
