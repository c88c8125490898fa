/**
 * Who takes part in the round in flight, kept incrementally so that every upload, abandon and
 * disconnect costs O(1) however many devices the round selected.
 */
export class RoundRoster {
  /** Selected and not dropped out (a participant that answered stays). */
  private readonly participants = new Set<string>();
  /** Participants whose one upload arrived (accepted, or refused after the participant checks). */
  private readonly answered = new Set<string>();

  enrol(clientIds: Iterable<string>): void {
    for (const clientId of clientIds) this.participants.add(clientId);
  }

  isParticipant(clientId: string): boolean {
    return this.participants.has(clientId);
  }

  hasAnswered(clientId: string): boolean {
    return this.answered.has(clientId);
  }

  /** Uses up a participant's one upload. */
  answer(clientId: string): void {
    if (this.participants.has(clientId)) this.answered.add(clientId);
  }

  /** Removes a participant that has not answered yet; false if there was none. */
  drop(clientId: string): boolean {
    if (!this.participants.has(clientId) || this.answered.has(clientId)) return false;
    this.participants.delete(clientId);
    return true;
  }

  /** The participants still in the round: they hear how it ends. */
  members(): Iterable<string> {
    return this.participants;
  }
}
