import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UploadTickets } from '../../src/uploads/upload-tickets.js';

describe('upload tickets', () => {
  const tickets = new UploadTickets(randomBytes(32));
  const claims = { clientId: 'device-a', roundId: 'round-1', expiresAt: 2_000 };

  it('verify what they issued until it expires', () => {
    const ticket = tickets.issue(claims);
    expect(tickets.verify(ticket, 1_000)).toEqual(claims);
    expect(tickets.verify(ticket, 2_000)).toEqual(claims);
    expect(tickets.verify(ticket, 2_001)).toBeNull();
  });

  it('refuse a changed claim, another key’s ticket and anything that is not a ticket', () => {
    const ticket = tickets.issue(claims);
    const [, mac] = ticket.split('.');
    const otherDevice = Buffer.from(JSON.stringify({ c: 'device-b', r: 'round-1', e: 2_000 })).toString('base64url');
    expect(tickets.verify(`${otherDevice}.${mac}`, 1_000)).toBeNull();
    expect(new UploadTickets(randomBytes(32)).verify(ticket, 1_000)).toBeNull();
    for (const junk of ['', '.', 'abc', `${ticket}x`, `.${mac}`, ticket.replace('.', '')]) expect(tickets.verify(junk, 1_000)).toBeNull();
    // Correctly signed claims that are not the claims' JSON.
    const key = Buffer.alloc(32, 7);
    for (const claimsText of ['not json', '{"c":"device-a","r":"round-1"}', '[]', 'null']) {
      const payload = Buffer.from(claimsText).toString('base64url');
      expect(new UploadTickets(key).verify(`${payload}.${createHmac('sha256', key).update(payload).digest('base64url')}`, 1_000)).toBeNull();
    }
  });

  it('need a key of at least 32 bytes', () => {
    expect(() => new UploadTickets(randomBytes(16))).toThrow(RangeError);
  });
});
