import { isHeld, type LockState, type ReleaseReason } from './model.js';

export interface AcquiredEvent {
  readonly type: 'acquired';
  readonly lock: string;
  readonly holder: string;
  readonly since: Date;
  readonly token: number;
}

export interface ReleasedEvent {
  readonly type: 'released';
  readonly lock: string;
  readonly content: string;
  readonly lastEditor: string | undefined;
  readonly releasedBy: string;
  readonly releasedAt: Date;
  readonly reason: ReleaseReason;
  readonly token: number;
  /** Who held it and since when, when the state before showed that hold (a watch may skip it). */
  readonly holder?: string | undefined;
  readonly acquiredAt?: Date | undefined;
}

export type LockEvent = AcquiredEvent | ReleasedEvent;

const sameTime = (a: Date | undefined, b: Date | undefined) => a?.getTime() === b?.getTime();

/**
 * The lock events between two observed states of one lock. A watch may skip intermediate
 * states, so a release followed by a new grant can arrive as one change: both are reported.
 * The first sighting of a lock (no `prev`) reports nothing.
 */
export function transitions(prev: LockState | undefined, next: LockState): LockEvent[] {
  if (!prev) return [];
  const events: LockEvent[] = [];
  if (next.releasedAt && next.releasedBy && !sameTime(prev.releasedAt, next.releasedAt)) {
    // A grant seen in the same change has already bumped the token past the released one.
    const token = isHeld(next) ? next.token - 1 : next.token;
    const hold = isHeld(prev) && prev.token === token ? prev : undefined;
    events.push({
      type: 'released',
      lock: next.name,
      content: next.content,
      lastEditor: next.lastEditor,
      releasedBy: next.releasedBy,
      releasedAt: next.releasedAt,
      reason: next.releaseReason ?? 'released',
      token,
      holder: hold?.holder,
      acquiredAt: hold?.acquiredAt,
    });
  }
  if (isHeld(next) && (!isHeld(prev) || prev.token !== next.token)) {
    events.push({
      type: 'acquired',
      lock: next.name,
      holder: next.holder,
      since: next.acquiredAt,
      token: next.token,
    });
  }
  return events;
}
