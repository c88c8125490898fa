/**
 * Which model versions one device connection was offered, so that it may report on them. A version
 * is offered to a connection when it was
 *  - the current version the connection's `server:welcome` named,
 *  - committed by a round while the connection was open (announced by the `model:published`
 *    broadcast): any round's version numbered above the welcome's, since numbers only grow, or
 *  - fetched by the connection with `model:fetch` (the last FETCHES_KEPT versions).
 * Kept with the socket (it dies with it): constant memory per connection, O(1) per event.
 */

/** Fetched versions a connection remembers; the SDK fetches the version it tests, one at a time. */
export const FETCHES_KEPT = 8;

/** What a report's check needs to know of the version it names. */
export interface OfferableVersion {
  version: number;
  /** The round that committed it; null for initial, registered and rollback versions (never broadcast). */
  roundId: string | null;
}

export class OfferedVersions {
  private readonly fetched: number[] = [];

  /** @param atWelcome the current version the welcome named (null: none existed yet). */
  constructor(private readonly atWelcome: number | null) {}

  recordFetch(version: number): void {
    if (this.fetched.includes(version)) return;
    this.fetched.push(version);
    if (this.fetched.length > FETCHES_KEPT) this.fetched.shift();
  }

  offers({ version, roundId }: OfferableVersion): boolean {
    if (version === this.atWelcome || this.fetched.includes(version)) return true;
    return roundId !== null && (this.atWelcome === null || version > this.atWelcome);
  }
}
