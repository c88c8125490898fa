/**
 * Which address a connection comes from, and how many connections each address holds. One rule for
 * sockets and REST: the same as express's `trust proxy` set to a hop count (express.ts applies it).
 */

/**
 * The client address given the socket's peer address and `X-Forwarded-For`, trusting `trustedHops`
 * proxies in front of the coordinator. The chain is read from the nearest hop outwards: the peer,
 * then X-Forwarded-For right to left; the answer is the entry `trustedHops` steps out, or the
 * furthest one when the chain is shorter. With 0 hops (the default) the header is ignored: anyone
 * can write it.
 */
export function clientAddress(peerAddress: string | undefined, forwardedFor: string | string[] | undefined, trustedHops: number): string {
  const peer = peerAddress ?? 'unknown';
  if (trustedHops <= 0 || forwardedFor === undefined) return peer;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const hops = header
    .split(',')
    .map((hop) => hop.trim())
    .filter((hop) => hop !== '')
    .reverse();
  const chain = [peer, ...hops];
  return chain[Math.min(trustedHops, chain.length - 1)]!;
}

/** Connections held per address, with a cap (0: unlimited). O(1) per connect and release. */
export class ConnectionsPerAddress {
  private readonly counts = new Map<string, number>();

  constructor(private readonly cap: number) {}

  /** Takes a slot for the address; the returned release gives it back (idempotent). Null: the address is at its cap. */
  acquire(address: string): (() => void) | null {
    const held = this.counts.get(address) ?? 0;
    if (this.cap > 0 && held >= this.cap) return null;
    this.counts.set(address, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(address) ?? 1) - 1;
      if (left <= 0) this.counts.delete(address);
      else this.counts.set(address, left);
    };
  }

  held(address: string): number {
    return this.counts.get(address) ?? 0;
  }
}
