import { describe, expect, it } from 'vitest';
import { clientAddress, ConnectionsPerAddress } from '../../src/boundary/client-address.js';

describe('clientAddress', () => {
  it('ignores X-Forwarded-For unless proxies are trusted', () => {
    expect(clientAddress('10.0.0.9', '203.0.113.7', 0)).toBe('10.0.0.9');
    expect(clientAddress('10.0.0.9', undefined, 1)).toBe('10.0.0.9');
    expect(clientAddress(undefined, undefined, 0)).toBe('unknown');
  });

  it('takes the entry as many hops out as there are trusted proxies, like express trust proxy = n', () => {
    // client 198.51.100.1 forged the first entry; the proxy nearest the coordinator appended what it saw.
    const header = '198.51.100.1, 203.0.113.7';
    expect(clientAddress('10.0.0.9', header, 1)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.9', header, 2)).toBe('198.51.100.1');
    // a chain shorter than the hop count: the furthest address known
    expect(clientAddress('10.0.0.9', header, 5)).toBe('198.51.100.1');
    expect(clientAddress('10.0.0.9', ['198.51.100.1', ' 203.0.113.7 '], 1)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.9', ' , ', 1)).toBe('10.0.0.9');
  });
});

describe('ConnectionsPerAddress', () => {
  it('caps each address on its own and gives slots back once per release', () => {
    const connections = new ConnectionsPerAddress(2);
    const first = connections.acquire('a');
    const second = connections.acquire('a');
    expect(first && second).toBeTruthy();
    expect(connections.acquire('a')).toBeNull();
    expect(connections.acquire('b')).not.toBeNull();
    first!();
    first!();
    expect(connections.held('a')).toBe(1);
    expect(connections.acquire('a')).not.toBeNull();
    expect(connections.acquire('a')).toBeNull();
  });

  it('does not cap with 0', () => {
    const connections = new ConnectionsPerAddress(0);
    for (let i = 0; i < 1000; i++) expect(connections.acquire('a')).not.toBeNull();
    expect(connections.held('a')).toBe(1000);
  });
});
