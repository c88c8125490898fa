/**
 * A device's identity is an ECDSA P-256 key pair that never leaves the device. What both sides must
 * compute identically lives here: the public key as it travels (a JWK, RFC 7517), and the bytes
 * whose SHA-256 is its RFC 7638 thumbprint, which is the device's client id (and the `cnf.jkt` an
 * enrolment token binds itself to). Hashing and signing use each side's own crypto (WebCrypto on
 * devices, node:crypto on the coordinator); this file is pure.
 */
import { z } from 'zod';

/** A P-256 coordinate: 32 bytes, base64url without padding. */
const coordinateSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a P-256 coordinate is 43 base64url characters');

/** The device's public key in the handshake: exactly the four members of an EC public JWK. */
export const publicKeyJwkSchema = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: coordinateSchema,
  y: coordinateSchema,
});
export type PublicKeyJwk = z.infer<typeof publicKeyJwkSchema>;

/**
 * The RFC 7638 thumbprint input: the required members in lexicographic order, no whitespace. Its
 * SHA-256, base64url-encoded, is the client id. All of it is ASCII (checked by the schema).
 */
export function thumbprintInput(jwk: PublicKeyJwk): Uint8Array {
  return asciiBytes(`{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`);
}

/** Bytes of an ASCII string (throws on anything else: nothing signed or hashed here is free text). */
export function asciiBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) throw new RangeError('asciiBytes: not an ASCII string');
    bytes[i] = code;
  }
  return bytes;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** base64url without padding (RFC 4648 section 5), as JWK members and thumbprints use it. */
export function base64url(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let c = 0; c < chars; c++) out += BASE64URL[(chunk >> (18 - 6 * c)) & 63];
  }
  return out;
}
