import type { StoreCallOptions } from './store.js';

/** One release, as the management view's timeline and /locks/<name>/history show it. */
export interface HistoryEntry {
  readonly token: number;
  readonly lastEditor?: string | undefined;
  readonly releasedBy: string;
  readonly releasedAt: string;
  readonly reason: string;
  readonly content: string;
}

/** The last releases of each lock, oldest first. */
export interface HistoryStore {
  append(lock: string, entry: HistoryEntry, options?: StoreCallOptions): Promise<void>;
  list(lock: string): Promise<HistoryEntry[]>;
}

const sameRelease = (a: HistoryEntry, b: HistoryEntry) =>
  a.token === b.token && a.releasedAt === b.releasedAt;

/**
 * `entries` plus `entry` (unless already there), trimmed to the newest `limit` entries and to
 * `maxBytes` of JSON, so the history always fits in one ConfigMap.
 */
export function appendBounded(
  entries: readonly HistoryEntry[],
  entry: HistoryEntry,
  limit: number,
  maxBytes: number,
): HistoryEntry[] {
  if (entries.some((e) => sameRelease(e, entry))) return [...entries];
  const next = [...entries, entry].slice(-limit);
  while (next.length > 1 && Buffer.byteLength(JSON.stringify(next)) > maxBytes) next.shift();
  return next;
}

export class MemoryHistory implements HistoryStore {
  private readonly entries = new Map<string, HistoryEntry[]>();

  constructor(
    private readonly limit: number,
    private readonly maxBytes = 900 * 1024,
  ) {}

  async append(lock: string, entry: HistoryEntry): Promise<void> {
    this.entries.set(
      lock,
      appendBounded(this.entries.get(lock) ?? [], entry, this.limit, this.maxBytes),
    );
  }

  async list(lock: string): Promise<HistoryEntry[]> {
    return [...(this.entries.get(lock) ?? [])];
  }
}
