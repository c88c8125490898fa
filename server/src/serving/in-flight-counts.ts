/** Requests queued per model version: a version none are queued for may be unloaded. */
export class InFlightCounts {
  private readonly counts = new Map<number, number>();

  acquire(version: number): void {
    this.counts.set(version, (this.counts.get(version) ?? 0) + 1);
  }

  release(version: number): void {
    const left = (this.counts.get(version) ?? 1) - 1;
    if (left > 0) this.counts.set(version, left);
    else this.counts.delete(version);
  }

  has(version: number): boolean {
    return this.counts.has(version);
  }
}
