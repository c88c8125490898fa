/** Bearer tokens, pure (no framework): the constant-time comparison and the header's parsing, shared by the coordinator's guards and the serverless handler. */
import { hash, timingSafeEqual } from 'node:crypto';

/**
 * Constant-time token comparison (hashing first makes the lengths equal). `given` comes from the
 * network and may be anything: only a non-empty string can match.
 */
export function tokenMatches(given: unknown, expected: string): boolean {
  return matchesAnyKey(given, [expected]);
}

/** The token of an `Authorization: Bearer <token>` header value. */
export function bearerFromHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header);
  return match?.[1]?.trim();
}

/**
 * Compares with every key (constant time each, no early exit), so timing tells nothing about which
 * matched. The presented token is hashed once per call, each key once per process.
 */
export function matchesAnyKey(given: unknown, keys: readonly string[]): boolean {
  if (typeof given !== 'string' || given.length === 0) return false;
  const digest = sha256(given);
  let matched = false;
  for (const key of keys) matched = timingSafeEqual(digest, keyDigest(key)) || matched;
  return matched;
}

/** Keys' digests: keys come from the configuration (never from a request), so this stays as small as the set of keys. */
const keyDigests = new Map<string, Buffer>();

function keyDigest(key: string): Buffer {
  let digest = keyDigests.get(key);
  if (!digest) {
    digest = sha256(key);
    keyDigests.set(key, digest);
  }
  return digest;
}

function sha256(text: string): Buffer {
  return hash('sha256', text, 'buffer');
}
