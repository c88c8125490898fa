/** Commander argument parsers: a bad value is a usage error (exit 2) before any request is sent. */
import { InvalidArgumentError } from 'commander';

export function parseIntOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER ? `expected an integer >= ${min}, got "${value}"` : `expected an integer from ${min} to ${max}, got "${value}"`,
      );
    }
    return n;
  };
}

export function parseNumberOption(options: { positive: boolean }) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (options.positive && n === 0)) {
      throw new InvalidArgumentError(`expected a ${options.positive ? 'positive' : 'non-negative'} number, got "${value}"`);
    }
    return n;
  };
}

/** A JSON object (strategy options); the coordinator validates its keys and values. */
export function parseJsonObjectOption(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`expected a JSON object, got "${value}" (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError(`expected a JSON object, got "${value}"`);
  return parsed as Record<string, unknown>;
}

export const parseVersion = parseIntOption(1);
