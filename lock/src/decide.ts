import { isHeld, liveQueue, type LockState, type ReleaseReason, type Waiter } from './model.js';

export type Command =
  | {
      readonly kind: 'avail';
      readonly user: string;
      readonly holdTimeoutSeconds?: number;
      /** Set when a waiter at the head of the line takes the lock it waited for. */
      readonly waiter?: string | undefined;
    }
  | {
      readonly kind: 'change';
      readonly user: string;
      readonly content: string;
      readonly ifMatch?: number | undefined;
    }
  | { readonly kind: 'release'; readonly user: string; readonly ifMatch?: number | undefined }
  /** Issued by the controller once it judged a hold expired; the other fields pin the hold it judged. */
  | {
      readonly kind: 'expire';
      readonly by: string;
      readonly holder: string;
      readonly token: number;
      readonly renewedAt: Date | undefined;
    }
  | { readonly kind: 'force'; readonly by: string }
  /** Joins the line (at most `max` live waiters). */
  | { readonly kind: 'enqueue'; readonly waiter: Waiter; readonly max: number }
  /** Leaves the line: the caller gave up, timed out or was served elsewhere. */
  | { readonly kind: 'dequeue'; readonly ids: readonly string[] }
  /** A replica's waiters are still there: their entries count until `expires`. */
  | { readonly kind: 'heartbeat'; readonly ids: readonly string[]; readonly expires: Date };

export type Action = Command['kind'];

export type Outcome = 'granted' | 'renewed' | 'updated' | 'queued' | 'dequeued' | ReleaseReason;

/** Machine codes of refusals; the HTTP layer maps them to statuses. */
export type RefusalCode =
  | 'locked'
  | 'not_held'
  | 'stale_token'
  | 'superseded'
  /** Free, but others wait in line before this caller. */
  | 'queued'
  | 'queue_full';

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

function released(state: LockState, by: string, reason: ReleaseReason, now: Date): LockState {
  return {
    ...state,
    holder: undefined,
    acquiredAt: undefined,
    renewedAt: undefined,
    holdTimeoutSeconds: undefined,
    releasedBy: by,
    releasedAt: now,
    releaseReason: reason,
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

/**
 * The whole lock protocol: what `command` does to `state` at `now`. Pure, so every store and the
 * controller share one set of rules and the rules are tested without any store.
 */
export function decide(state: LockState, command: Command, now: Date): Decision {
  switch (command.kind) {
    case 'avail': {
      if (!isHeld(state)) {
        // Waiters go first: a free lock goes to the head of the line, or to anyone if none waits.
        const line = liveQueue(state, now);
        const head = line[0];
        if (head && head.id !== command.waiter) return refuse('queued', state);
        return apply('granted', {
          ...withQueue(state, line.slice(head ? 1 : 0)),
          holder: command.user,
          acquiredAt: now,
          renewedAt: now,
          holdTimeoutSeconds: command.holdTimeoutSeconds || undefined,
          token: state.token + 1,
        });
      }
      if (state.holder !== command.user) return refuse('locked', state);
      // Returning `state` itself tells the store there is nothing to write.
      const recent = state.renewedAt && now.getTime() - state.renewedAt.getTime() < renewCoalesceMs;
      return apply('renewed', recent ? state : { ...state, renewedAt: now });
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
      });
    }
    case 'release': {
      const refusal = checkHolder(state, command.user, command.ifMatch);
      if (refusal) return refusal;
      return apply('released', released(state, command.user, 'released', now));
    }
    case 'expire': {
      if (!isHeld(state)) return refuse('not_held', state);
      // The hold the controller judged must still be the one in place; a renewal or a new
      // grant since then means the judgement is out of date.
      if (
        state.holder !== command.holder ||
        state.token !== command.token ||
        state.renewedAt?.getTime() !== command.renewedAt?.getTime()
      ) {
        return refuse('superseded', state);
      }
      return apply('expired', released(state, command.by, 'expired', now));
    }
    case 'force': {
      if (!isHeld(state)) return refuse('not_held', state);
      return apply('forced', released(state, command.by, 'forced', now));
    }
    case 'enqueue': {
      const line = liveQueue(state, now);
      if (line.some((w) => w.id === command.waiter.id)) return apply('queued', state);
      if (line.length >= command.max) return refuse('queue_full', state);
      return apply('queued', withQueue(state, [...line, command.waiter]));
    }
    case 'dequeue': {
      const queue = state.queue ?? [];
      const kept = queue.filter((w) => !command.ids.includes(w.id));
      return apply('dequeued', kept.length === queue.length ? state : withQueue(state, kept));
    }
    case 'heartbeat': {
      const line = liveQueue(state, now);
      if (!line.some((w) => command.ids.includes(w.id))) return apply('queued', state);
      const queue = line.map((w) =>
        command.ids.includes(w.id) ? { ...w, expires: command.expires } : w,
      );
      return apply('queued', withQueue(state, queue));
    }
  }
}
