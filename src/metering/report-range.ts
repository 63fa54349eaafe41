/**
 * A usage report's range `[from, to)` in unix seconds, split so that whole hours are read from the hourly
 * aggregates (one row per model and hour) and only the partial hours at its ends from the events themselves: a
 * month of a busy tenant is then ~700 aggregate rows instead of millions of events.
 */
export interface ReportRange {
  /** Whole hours `[start, end)`, hour-aligned; null when the range holds none. */
  hours: [number, number] | null;
  /** Sub-ranges read from the events (0, 1 or 2 of them). */
  edges: [number, number][];
}

/** The whole range read from the events (for what the aggregates do not hold, such as keys). */
export function eventsOnly(from: number, to: number): ReportRange {
  return { hours: null, edges: from < to ? [[from, to]] : [] };
}

export function splitByHours(from: number, to: number): ReportRange {
  const start = Math.ceil(from / 3600) * 3600;
  const end = Math.floor(to / 3600) * 3600;
  if (start >= end) return eventsOnly(from, to);
  const edges: [number, number][] = [];
  if (from < start) edges.push([from, start]);
  if (end < to) edges.push([end, to]);
  return { hours: [start, end], edges };
}
