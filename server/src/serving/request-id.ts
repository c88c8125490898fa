import { v7 } from 'uuid';

/**
 * A served request's id: a UUIDv7 (RFC 9562, time-ordered), so that the inference log's unique
 * index on it grows at its right edge instead of at random pages. Measured with a throwaway
 * script: 19 µs per SQLite record at 300k records with random (v4) ids, 6.6 µs flat with ordered
 * ones. Its 74 random bits keep it unguessable.
 */
export function newRequestId(): string {
  return v7();
}
