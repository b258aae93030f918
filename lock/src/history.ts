import type { StoreCallOptions } from './store.js';

/** One release, as the management view's timeline and /locks/<name>/history show it. */
export interface HistoryEntry {
  readonly token: number;
  readonly lastEditor?: string | undefined;
  readonly releasedBy: string;
  readonly releasedAt: string;
  readonly reason: string;
  readonly content: string;
  /** Who held the lock and since when (entries recorded before these were kept have neither). */
  readonly holder?: string | undefined;
  readonly acquiredAt?: string | undefined;
}

/** The last releases of each lock, oldest first. */
export interface HistoryStore {
  append(lock: string, entry: HistoryEntry, options?: StoreCallOptions): Promise<void>;
  /** The same array for as long as the history is unchanged: callers may cache by it. */
  list(lock: string): Promise<readonly HistoryEntry[]>;
  /** The highest token the lock is known to have handed out, kept across its deletion. */
  floor(lock: string): Promise<number>;
  /** Records that the lock handed out `token` (a grant, or the last token of a deleted lock). */
  raiseFloor(lock: string, token: number, options?: StoreCallOptions): Promise<void>;
}

/**
 * The highest of a recorded floor and the tokens of the releases kept. Anything that is not a
 * whole number (a hand-edited or damaged entry) is ignored rather than turning the floor into NaN.
 */
export function tokenFloor(recorded: number, entries: readonly HistoryEntry[]): number {
  const tokens = [recorded, ...entries.map((e) => e.token as unknown)].filter(
    (t): t is number => Number.isSafeInteger(t) && (t as number) >= 0,
  );
  return Math.max(0, ...tokens);
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

const none: readonly HistoryEntry[] = Object.freeze([]);

export class MemoryHistory implements HistoryStore {
  private readonly entries = new Map<string, readonly HistoryEntry[]>();
  private readonly floors = new Map<string, number>();

  constructor(
    private readonly limit: number,
    private readonly maxBytes = 900 * 1024,
  ) {}

  async append(lock: string, entry: HistoryEntry): Promise<void> {
    const before = this.entries.get(lock) ?? [];
    const after = appendBounded(before, entry, this.limit, this.maxBytes);
    if (after.length !== before.length || after.some((e, i) => e !== before[i]))
      this.entries.set(lock, Object.freeze(after));
  }

  async list(lock: string): Promise<readonly HistoryEntry[]> {
    return this.entries.get(lock) ?? none;
  }

  async floor(lock: string): Promise<number> {
    return tokenFloor(this.floors.get(lock) ?? 0, this.entries.get(lock) ?? []);
  }

  async raiseFloor(lock: string, token: number): Promise<void> {
    this.floors.set(lock, Math.max(token, this.floors.get(lock) ?? 0));
  }
}
