import { describe, expect, it } from 'vitest';
import { bearerFromHeader, matchesAnyKey, tokenMatches } from '../../src/auth/tokens.js';

describe('bearer token comparison', () => {
  it('matches the expected token only', () => {
    expect(tokenMatches('operator-token-0123456789', 'operator-token-0123456789')).toBe(true);
    expect(tokenMatches('operator-token-012345678', 'operator-token-0123456789')).toBe(false);
    expect(tokenMatches('operator-token-0123456789x', 'operator-token-0123456789')).toBe(false);
  });

  it('refuses anything but a non-empty string, whatever the network sent', () => {
    for (const given of [undefined, null, '', 42, ['operator-token-0123456789'], { token: 'operator-token-0123456789' }]) {
      expect(tokenMatches(given, 'operator-token-0123456789')).toBe(false);
    }
  });

  it('matches any of several keys, and none when there are none', () => {
    const keys = ['key-a-0123456789', 'key-b-0123456789', 'key-c-0123456789'];
    for (const key of keys) expect(matchesAnyKey(key, keys)).toBe(true);
    expect(matchesAnyKey('key-d-0123456789', keys)).toBe(false);
    expect(matchesAnyKey('key-a-0123456789', [])).toBe(false);
  });

  it('gives the same answers the second time (the keys are hashed once)', () => {
    const keys = ['repeat-key-0123456789'];
    expect([matchesAnyKey('repeat-key-0123456789', keys), matchesAnyKey('repeat-key-0123456789', keys)]).toEqual([true, true]);
    expect([matchesAnyKey('other-key-0123456789', keys), matchesAnyKey('other-key-0123456789', keys)]).toEqual([false, false]);
  });

  it('reads the token of an Authorization header', () => {
    expect(bearerFromHeader('Bearer abc')).toBe('abc');
    expect(bearerFromHeader('bearer   abc  ')).toBe('abc');
    expect(bearerFromHeader('Basic abc')).toBeUndefined();
    expect(bearerFromHeader(undefined)).toBeUndefined();
  });
});
