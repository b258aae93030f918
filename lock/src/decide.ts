import { defaultWaiterTtlSeconds } from './sightings.js';
import {
  byExpiry,
  isHeld,
  liveQueue,
  type Liveness,
  type LockState,
  type ReleaseReason,
  type Waiter,
} from './model.js';

export type Command =
  | {
      readonly kind: 'avail';
      readonly user: string;
      readonly holdTimeoutSeconds?: number;
      /** Set when a waiter at the head of the line takes the lock it waited for. */
      readonly waiter?: string | undefined;
      /**
       * The request asking (a waiter's id, or one of its own): a grant is recorded as granted to
       * it, and a renewal by another request of the same user claims the hold (the record is
       * cleared, once). A hand-back pinned to a request that left then finds the hold claimed and
       * leaves it alone.
       */
      readonly claim?: string | undefined;
      /**
       * A renewal pinned to the hold granted with this token: refused (`not_held`, `locked`,
       * `stale_token`) unless the caller still holds it, never a new grant. A client that keeps
       * a hold alive cannot take the lock again by mistake after it lost it.
       */
      readonly ifMatch?: number | undefined;
    }
  | {
      readonly kind: 'change';
      readonly user: string;
      readonly content: string;
      readonly ifMatch?: number | undefined;
    }
  | {
      readonly kind: 'release';
      readonly user: string;
      readonly ifMatch?: number | undefined;
      /** Written in the same update that releases: a whole edit in one write. */
      readonly content?: string | undefined;
      /** Only while the hold is still the one granted to (or last claimed by) this request. */
      readonly claim?: string | undefined;
    }
  /** Issued by the controller once it judged a hold expired; the other fields pin the hold it judged. */
  | {
      readonly kind: 'expire';
      readonly by: string;
      readonly holder: string;
      readonly token: number;
      readonly renewedAt: Date | undefined;
      /** Judged as a hand-over nobody took up: refused once it was taken up. */
      readonly unclaimed?: boolean | undefined;
    }
  /** An admin's release of whoever holds the lock; `ifMatch` pins the hold the admin saw. */
  | { readonly kind: 'force'; readonly by: string; readonly ifMatch?: number | undefined }
  /**
   * One replica's changes to a lock's line, in one write: `join` puts waiters in line (an entry
   * already there is renewed with the new `expires`; a first join takes its place by `since`,
   * before every entry that began to wait after it, but behind those in `behind`; a renewal of
   * one that is missing, whatever dropped it, joins again at the back), `leave` takes waiters
   * out. Joins over `max` live entries, or over `perUser` entries of one user, are left out: the
   * caller sees it in the line it gets back.
   */
  /**
   * The waiter's replica took up a hold handed over to it (its client was answered): the
   * controller no longer hands it on. Nothing happens unless that hold is still in place.
   */
  | { readonly kind: 'confirm'; readonly waiter: string; readonly token: number }
  | {
      readonly kind: 'line';
      readonly join: readonly Waiter[];
      /**
       * For a joining id, the ids that were in line when its caller came, as its replica saw
       * them: it never goes ahead of those, whatever the clocks say.
       */
      readonly behind?: ReadonlyMap<string, ReadonlySet<string>> | undefined;
      readonly leave: readonly string[];
      readonly max: number;
      readonly perUser: number;
    };

export type Action = Command['kind'];

export type Outcome = 'granted' | 'renewed' | 'updated' | 'queued' | ReleaseReason;

/** Machine codes of refusals; the HTTP layer maps them to statuses. */
export type RefusalCode =
  | 'locked'
  | 'not_held'
  | 'stale_token'
  | 'superseded'
  /** Free, but others wait in line before this caller. */
  | 'queued'
  /** The line holds as many waiters as it may. */
  | 'queue_full'
  /** The caller already has as many places in this line as one user may. */
  | 'waiting_limit';

export interface Refusal {
  readonly code: RefusalCode;
  readonly state: LockState;
}

export type Decision =
  | { readonly ok: true; readonly outcome: Outcome; readonly next: LockState }
  | { readonly ok: false; readonly refusal: Refusal };

/** Renewals this close to the previous one change nothing worth a write. */
export const renewCoalesceMs = 1000;

const refuse = (code: RefusalCode, state: LockState): Decision => ({
  ok: false,
  refusal: { code, state },
});

const apply = (outcome: Outcome, next: LockState): Decision => ({ ok: true, outcome, next });

/**
 * The lock released by `by`, and in the same write handed to the head of the line, if anyone
 * waits: the head becomes the holder (token + 1), the hold is recorded as granted to its request
 * and unclaimed until its replica takes it up (see `confirm`).
 */
function released(
  state: LockState,
  by: string,
  reason: ReleaseReason,
  now: Date,
  live: Liveness,
): LockState {
  const free: LockState = {
    ...state,
    holder: undefined,
    acquiredAt: undefined,
    renewedAt: undefined,
    holdTimeoutSeconds: undefined,
    grantedTo: undefined,
    unclaimedSeconds: undefined,
    releasedBy: by,
    releasedAt: now,
    releaseReason: reason,
  };
  const line = liveQueue(state, live);
  const head = line[0];
  // A waiter of a replica that does not answer hand-overs (an older version, during an upgrade)
  // takes the free lock itself, as it always did.
  if (!head?.takesHandOver) return withQueue(free, line);
  return {
    ...withQueue(free, line.slice(1)),
    holder: head.user,
    acquiredAt: now,
    renewedAt: now,
    holdTimeoutSeconds: head.holdTimeoutSeconds || undefined,
    token: state.token + 1,
    grantedTo: head.id,
    unclaimedSeconds: head.ttlSeconds ?? defaultWaiterTtlSeconds,
  };
}

/** `state` with `queue` as its line; an empty line is no line, as every store reads it back. */
const withQueue = (state: LockState, queue: readonly Waiter[]): LockState => ({
  ...state,
  queue: queue.length ? queue : undefined,
});

/** Refuses a holder-only command from someone who is not the current holder, or with a stale token. */
function checkHolder(state: LockState, user: string, ifMatch: number | undefined): Decision | null {
  if (!isHeld(state)) return refuse('not_held', state);
  if (state.holder !== user) return refuse('locked', state);
  if (ifMatch !== undefined && ifMatch !== state.token) return refuse('stale_token', state);
  return null;
}

const sameLine = (a: readonly Waiter[], b: readonly Waiter[]) =>
  a.length === b.length &&
  a.every(
    (w, i) =>
      w.id === b[i]?.id && w.expires.getTime() === b[i].expires.getTime() && w.beat === b[i].beat,
  );

/** The line after one replica's joins and leaves (see the `line` command). */
function changeLine(
  line: readonly Waiter[],
  { join, behind, leave, max, perUser }: Extract<Command, { kind: 'line' }>,
  grantedTo: string | undefined,
): Waiter[] {
  const next = line.filter((w) => !leave.includes(w.id));
  for (const waiter of join) {
    // The waiter the lock was just handed to has been served: it never joins again.
    if (leave.includes(waiter.id) || waiter.id === grantedTo) continue;
    const at = next.findIndex((w) => w.id === waiter.id);
    const present = next[at];
    if (present) {
      next[at] = {
        ...present,
        expires: waiter.expires,
        ttlSeconds: waiter.ttlSeconds,
        beat: waiter.beat,
      };
      continue;
    }
    const places = next.filter((w) => w.user === waiter.user).length;
    if (next.length >= max || places >= perUser) continue;
    // First come, first served by when each waiter began to wait, not by when its replica wrote
    // it: a join written late (it waited for a release to carry it) goes before those written
    // since who came after it. Never before those its replica saw in line when it came: clocks
    // of replicas only order callers who came within one wait for a ride of each other. An entry
    // put back (a renewal, `beat` > 0, of one that was dropped) goes to the end: after an
    // outage, those who waited meanwhile go first.
    const seen = behind?.get(waiter.id);
    const floor = seen ? next.findLastIndex((w) => seen.has(w.id)) : -1;
    const after = waiter.beat
      ? -1
      : next.findIndex((w, k) => k > floor && w.since.getTime() > waiter.since.getTime());
    if (after < 0) next.push(waiter);
    else next.splice(after, 0, waiter);
  }
  return next;
}

/**
 * The whole lock protocol: what `command` does to `state` at `now`, with `live` saying which
 * waiters still count. Pure, so every store and the controller share one set of rules and the
 * rules are tested without any store.
 */
export function decide(
  state: LockState,
  command: Command,
  now: Date,
  live: Liveness = byExpiry(now),
): Decision {
  switch (command.kind) {
    case 'avail': {
      if (command.ifMatch !== undefined) {
        const refusal = checkHolder(state, command.user, command.ifMatch);
        if (refusal) return refusal;
      }
      if (!isHeld(state)) {
        // Waiters go first: a free lock goes to the head of the line, or to anyone if none waits.
        const line = liveQueue(state, live);
        const head = line[0];
        if (head && head.id !== command.waiter) return refuse('queued', state);
        return apply('granted', {
          ...withQueue(state, line.slice(head ? 1 : 0)),
          holder: command.user,
          acquiredAt: now,
          renewedAt: now,
          holdTimeoutSeconds: command.holdTimeoutSeconds || undefined,
          token: state.token + 1,
          grantedTo: command.claim ?? head?.id,
        });
      }
      if (state.holder !== command.user) return refuse('locked', state);
      // Another request of the holder's renews a hold still recorded as granted to one request:
      // it claims the hold for whichever request of theirs is still there, whatever the time, so
      // a hand-back pinned to the request that was granted it (and left) leaves it alone. Only a
      // plain avail claims: a waiter's take of a lock its user already holds is only a renewal.
      const claims =
        command.claim !== undefined &&
        state.grantedTo !== undefined &&
        command.claim !== state.grantedTo;
      const recent = state.renewedAt && now.getTime() - state.renewedAt.getTime() < renewCoalesceMs;
      // A hand-over the holder's own request asks about is taken up by that request.
      const takesUp = state.unclaimedSeconds !== undefined;
      // Returning `state` itself tells the store there is nothing to write.
      if (recent && !claims && !takesUp) return apply('renewed', state);
      return apply('renewed', {
        ...state,
        renewedAt: now,
        grantedTo: claims ? undefined : state.grantedTo,
        unclaimedSeconds: undefined,
      });
    }
    case 'change': {
      const refusal = checkHolder(state, command.user, command.ifMatch);
      if (refusal) return refusal;
      return apply('updated', {
        ...state,
        content: command.content,
        lastEditor: command.user,
        lastEditedAt: now,
        renewedAt: now,
        unclaimedSeconds: undefined,
      });
    }
    case 'release': {
      const refusal = checkHolder(state, command.user, command.ifMatch);
      if (refusal) return refusal;
      if (command.claim !== undefined && command.claim !== state.grantedTo)
        return refuse('superseded', state);
      const edited =
        command.content === undefined
          ? state
          : { ...state, content: command.content, lastEditor: command.user, lastEditedAt: now };
      return apply('released', released(edited, command.user, 'released', now, live));
    }
    case 'expire': {
      if (!isHeld(state)) return refuse('not_held', state);
      // The hold the controller judged must still be the one in place; a renewal or a new
      // grant since then means the judgement is out of date.
      if (
        state.holder !== command.holder ||
        state.token !== command.token ||
        state.renewedAt?.getTime() !== command.renewedAt?.getTime() ||
        (command.unclaimed === true && state.unclaimedSeconds === undefined)
      ) {
        return refuse('superseded', state);
      }
      return apply('expired', released(state, command.by, 'expired', now, live));
    }
    case 'force': {
      if (!isHeld(state)) return refuse('not_held', state);
      if (command.ifMatch !== undefined && command.ifMatch !== state.token)
        return refuse('stale_token', state);
      return apply('forced', released(state, command.by, 'forced', now, live));
    }
    case 'confirm': {
      const unchanged =
        !isHeld(state) ||
        state.unclaimedSeconds === undefined ||
        state.grantedTo !== command.waiter ||
        state.token !== command.token;
      return apply('renewed', unchanged ? state : { ...state, unclaimedSeconds: undefined });
    }
    case 'line': {
      const next = changeLine(liveQueue(state, live), command, state.grantedTo);
      // Nothing to write when the line stays as stored (dead entries are dropped only with a change).
      if (sameLine(next, state.queue ?? [])) return apply('queued', state);
      return apply('queued', withQueue(state, next));
    }
  }
}
