import { isHeld, type HistoryEntry, type LockState } from '@retrospective/lock';

/** A `released` frame, as the WebSocket sends it. */
export interface ReleasedFrame {
  readonly type: 'released';
  readonly lock: string;
  readonly content: string;
  readonly lastEditor: string | undefined;
  readonly releasedBy: string;
  readonly releasedAt: string;
  readonly reason: string;
  readonly token: number;
  /** Who held it and since when, where known. */
  readonly holder?: string | undefined;
  readonly acquiredAt?: string | undefined;
}

/**
 * The tokens a reconnecting client last saw, from `?since=`: `<lock>:<token>` pairs separated
 * by commas, or a bare token for every lock. Undefined when absent; an Error naming the problem
 * when malformed or naming an unknown lock.
 */
export function parseSince(
  value: string | null,
  locks: readonly string[],
): Map<string, number> | Error | undefined {
  if (value === null || value === '') return undefined;
  const since = new Map<string, number>();
  if (/^\d{1,15}$/.test(value)) {
    for (const lock of locks) since.set(lock, Number(value));
    return since;
  }
  for (const pair of value.split(',')) {
    const match = /^([a-z0-9][-a-z0-9]{0,62}):(\d{1,15})$/.exec(pair);
    // The messages name no client text: they may be answered on a raw socket.
    if (!match?.[1] || match[2] === undefined)
      return new Error('since: each item must be <lock>:<token>, or one token for every lock');
    if (!locks.includes(match[1])) return new Error('since: it names a lock that does not exist');
    since.set(match[1], Number(match[2]));
  }
  return since;
}

/** The last release a lock's state records (the Lease keeps only the latest one). */
export function lastRelease(state: LockState): ReleasedFrame | undefined {
  if (!state.releasedAt || !state.releasedBy) return undefined;
  return {
    type: 'released',
    lock: state.name,
    content: state.content,
    lastEditor: state.lastEditor,
    releasedBy: state.releasedBy,
    releasedAt: state.releasedAt.toISOString(),
    reason: state.releaseReason ?? 'released',
    // A grant since then has already moved the token one past the released one.
    token: isHeld(state) ? state.token - 1 : state.token,
  };
}

export const historyFrame = (lock: string, entry: HistoryEntry): ReleasedFrame => ({
  type: 'released',
  lock,
  content: entry.content,
  lastEditor: entry.lastEditor,
  releasedBy: entry.releasedBy,
  releasedAt: entry.releasedAt,
  reason: entry.reason,
  token: entry.token,
  holder: entry.holder,
  acquiredAt: entry.acquiredAt,
});

/** The releases after `token` among every source, each once (by token), oldest first. */
export function missedReleases(
  token: number,
  sources: readonly (readonly ReleasedFrame[])[],
): ReleasedFrame[] {
  const byToken = new Map<number, ReleasedFrame>();
  for (const frame of sources.flat())
    if (frame.token > token && !byToken.has(frame.token)) byToken.set(frame.token, frame);
  return [...byToken.values()].sort((a, b) => a.token - b.token);
}

/** The last releases this replica saw go by, per lock: what a client that just lost its connection missed. */
export class RecentReleases {
  private readonly frames = new Map<string, ReleasedFrame[]>();

  constructor(private readonly size = 64) {}

  add(frame: ReleasedFrame): void {
    const list = this.frames.get(frame.lock) ?? [];
    list.push(frame);
    if (list.length > this.size) list.shift();
    this.frames.set(frame.lock, list);
  }

  of(lock: string): readonly ReleasedFrame[] {
    return this.frames.get(lock) ?? [];
  }

  forget(lock: string): void {
    this.frames.delete(lock);
  }
}
