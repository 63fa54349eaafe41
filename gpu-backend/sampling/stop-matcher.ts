/**
 * Cuts generated text at the first stop string without ever emitting part of one: text that could still
 * turn out to start a stop string is held back until it either completes one or cannot.
 */
export class StopMatcher {
  private pending = "";

  constructor(private readonly stops: string[]) {}

  /** Feeds new text; returns what may be emitted now and whether a stop string completed. */
  push(delta: string): { emit: string; stopped: boolean } {
    this.pending += delta;
    if (this.stops.length === 0) {
      const emit = this.pending;
      this.pending = "";
      return { emit, stopped: false };
    }
    let first = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (first < 0 || i < first)) first = i;
    }
    if (first >= 0) {
      const emit = this.pending.slice(0, first);
      this.pending = "";
      return { emit, stopped: true };
    }
    const hold = this.heldBack();
    const emit = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { emit, stopped: false };
  }

  /** The generation ended for another reason: whatever was held back is plain text after all. */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest;
  }

  /** Length of the longest suffix of the pending text that is a proper prefix of some stop string. */
  private heldBack(): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > best; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
