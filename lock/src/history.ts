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
  /** The highest token the lock is known to have handed out, kept across its deletion. */
  floor(lock: string): Promise<number>;
  /** Records that the lock handed out `token` (a grant, or the last token of a deleted lock). */
  raiseFloor(lock: string, token: number, options?: StoreCallOptions): Promise<void>;
}

/** The highest of a recorded floor and the tokens of the releases kept. */
export function tokenFloor(recorded: number, entries: readonly HistoryEntry[]): number {
  return Math.max(recorded, ...entries.map((e) => e.token));
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
  private readonly floors = new Map<string, number>();

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

  async floor(lock: string): Promise<number> {
    return tokenFloor(this.floors.get(lock) ?? 0, this.entries.get(lock) ?? []);
  }

  async raiseFloor(lock: string, token: number): Promise<void> {
    this.floors.set(lock, Math.max(token, this.floors.get(lock) ?? 0));
  }
}
