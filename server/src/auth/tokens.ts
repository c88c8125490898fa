/** Bearer tokens, pure (no framework): the constant-time comparison and the header's parsing, shared by the coordinator's guards and the serverless handler. */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Constant-time token comparison (hashing first makes the lengths equal). `given` comes from the
 * network and may be anything: only a non-empty string can match.
 */
export function tokenMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header value. */
export function bearerFromHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header);
  return match?.[1]?.trim();
}

/** Compares with every key (constant time each, no early exit), so timing tells nothing about which matched. */
export function matchesAnyKey(given: string | undefined, keys: readonly string[]): boolean {
  let matched = false;
  for (const key of keys) matched = tokenMatches(given, key) || matched;
  return matched;
}
