import { createHmac, timingSafeEqual } from 'node:crypto';

/** Whom a verified ticket lets upload, to which round. */
export interface TicketClaims {
  clientId: string;
  roundId: string;
  /** Epoch milliseconds after which the ticket is refused. */
  expiresAt: number;
}

/**
 * Upload tickets (docs/SECURITY.md, "Uploads over HTTP"): `base64url(claims JSON).base64url(HMAC-SHA256)`
 * under a key that never leaves the process, so the upload listener checks one without asking the
 * round engine. A ticket names one device and one round; it proves the round engine sent that
 * device its plan, nothing more: admission (round open, participant, one upload) is the engine's.
 */
export class UploadTickets {
  constructor(private readonly key: Uint8Array) {
    if (key.byteLength < 32) throw new RangeError('an upload ticket key needs at least 32 bytes');
  }

  issue(claims: TicketClaims): string {
    const payload = Buffer.from(JSON.stringify({ c: claims.clientId, r: claims.roundId, e: claims.expiresAt })).toString('base64url');
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** The ticket's claims when its MAC verifies and it has not expired at `now`; else null. */
  verify(ticket: string, now: number): TicketClaims | null {
    const dot = ticket.indexOf('.');
    if (dot <= 0) return null;
    const payload = ticket.slice(0, dot);
    const given = Buffer.from(ticket.slice(dot + 1), 'base64url');
    const expected = this.mac(payload);
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) return null;
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return null;
    }
    const { c, r, e } = (claims ?? {}) as Record<string, unknown>;
    if (typeof c !== 'string' || typeof r !== 'string' || typeof e !== 'number' || e < now) return null;
    return { clientId: c, roundId: r, expiresAt: e };
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }
}
