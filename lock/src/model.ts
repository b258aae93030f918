/** Why a lock was last released. */
export type ReleaseReason = 'released' | 'expired' | 'forced';

/** A caller waiting in line for a lock (`avail?wait=`), served first come, first served. */
export interface Waiter {
  /** Unique per wait; only the replica that holds the caller's request knows it is its own. */
  readonly id: string;
  readonly user: string;
  readonly since: Date;
  /**
   * The entry counts until then: its replica pushes it forward while the caller waits, so the
   * waiters of a replica that died drop out of the line once it passes.
   */
  readonly expires: Date;
  /**
   * How long the entry counts after a replica last saw it renewed (by its own clock, so clocks that
   * disagree between replicas do not matter); entries written before this field count 15 s.
   */
  readonly ttlSeconds?: number | undefined;
  /**
   * Counts the entry's renewals (its replica adds one each time): a higher count is a renewal
   * whatever the wall clock did, even stepped back. Entries written before it existed have none.
   */
  readonly beat?: number | undefined;
  /** The hold timeout the waiter asked for: a hand-over grants it with this one. */
  readonly holdTimeoutSeconds?: number | undefined;
  /** Its replica answers a hand-over by a release (replicas of earlier versions take the lock). */
  readonly takesHandOver?: boolean | undefined;
  /**
   * Its replica is of a version that reads only the line's first form (before ADR 16): the entry
   * is written back in that form, where that replica still sees it.
   */
  readonly firstForm?: boolean | undefined;
}

/** Whether a waiter's entry still counts; see LineSightings for the rule replicas use. */
export type Liveness = (waiter: Waiter) => boolean;

/** The entry's own clock: what a single process (or a test) can use. */
export const byExpiry =
  (now: Date): Liveness =>
  (waiter) =>
    waiter.expires.getTime() > now.getTime();

/** Everything known about one lock: who holds it, the guarded string and its provenance. */
export interface LockState {
  readonly name: string;
  readonly holder?: string | undefined;
  readonly acquiredAt?: Date | undefined;
  readonly renewedAt?: Date | undefined;
  /** Incremented on every grant: the fencing token handed to the holder. */
  readonly token: number;
  /** Idle time after which the controller expires a hold; undefined means never. */
  readonly holdTimeoutSeconds?: number | undefined;
  readonly content: string;
  readonly lastEditor?: string | undefined;
  readonly lastEditedAt?: Date | undefined;
  readonly releasedBy?: string | undefined;
  readonly releasedAt?: Date | undefined;
  readonly releaseReason?: ReleaseReason | undefined;
  /** Callers waiting for the lock, oldest first (entries past `expires` no longer count). */
  readonly queue?: readonly Waiter[] | undefined;
  /**
   * The request the current hold was granted to (a waiter's id, or the id a request of its own
   * carried), until another request of the holder claims it by renewing; undefined then, and for
   * holds granted before this was recorded.
   */
  readonly grantedTo?: string | undefined;
  /**
   * Set while a hold handed over by a release is not yet taken up by its waiter's replica: the
   * seconds that replica has to take it up (its entry's TTL) before the controller hands it on.
   */
  readonly unclaimedSeconds?: number | undefined;
}

/** A state together with the store version it was read at (a Lease resourceVersion). */
export interface Versioned {
  readonly state: LockState;
  readonly version: string;
  /**
   * The store's own record at that version (a Lease), so a write is built on exactly the object
   * it decided on and keeps what others wrote there (labels, annotations, owners).
   */
  readonly raw?: unknown;
}

/** A free, empty lock; `floor` is the highest token it may have handed out in an earlier life. */
export function emptyLock(name: string, floor = 0): LockState {
  // One more than the floor: room for a grant no one recorded before the lock was deleted.
  return { name, token: floor > 0 ? floor + 1 : 0, content: '' };
}

export function isHeld(
  state: LockState,
): state is LockState & { holder: string; acquiredAt: Date } {
  return state.holder !== undefined && state.holder !== '' && state.acquiredAt !== undefined;
}

/** Whether the waiter `id` is in the line of `state`, or was handed the lock in it. */
export function admits(state: LockState, id: string): boolean {
  return state.grantedTo === id || (state.queue?.some((w) => w.id === id) ?? false);
}

/** Seconds the current hold has lasted at `now`, or undefined when the lock is free. */
export function heldSeconds(state: LockState, now: Date): number | undefined {
  if (!isHeld(state)) return undefined;
  return Math.max(0, (now.getTime() - state.acquiredAt.getTime()) / 1000);
}

/** The waiters that still count, oldest first. */
export function liveQueue(state: LockState, live: Liveness): readonly Waiter[] {
  return (state.queue ?? []).filter(live);
}
