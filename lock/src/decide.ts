import { isHeld, type LockState, type ReleaseReason } from './model.js';

export type Command =
  | { readonly kind: 'avail'; readonly user: string; readonly holdTimeoutSeconds?: number }
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
  | { readonly kind: 'force'; readonly by: string };

export type Action = Command['kind'];

export type Outcome = 'granted' | 'renewed' | 'updated' | ReleaseReason;

/** Machine codes of refusals; the HTTP layer maps them to statuses. */
export type RefusalCode = 'locked' | 'not_held' | 'stale_token' | 'superseded';

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
        return apply('granted', {
          ...state,
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
  }
}
