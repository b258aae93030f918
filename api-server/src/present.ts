import {
  byExpiry,
  heldSeconds,
  isHeld,
  liveQueue,
  type LockEvent,
  type LockState,
  type Refusal,
  type Waiter,
} from '@retrospective/lock';

/** "retrospective" reads as "Retrospective" in sentences, as in the seed's messages. */
export const title = (lock: string) => lock.charAt(0).toUpperCase() + lock.slice(1);

const iso = (d: Date | undefined) => d?.toISOString();

/**
 * The JSON shape of `check`, also used for every lock in the WebSocket snapshot; `line` is who
 * waits as the service judges it (by default, by the entries' own clock).
 */
export function checkBody(
  state: LockState,
  now: Date,
  line: readonly Waiter[] = liveQueue(state, byExpiry(now)),
) {
  const held = isHeld(state);
  const seconds = heldSeconds(state, now);
  return {
    lock: state.name,
    available: !held,
    holder: state.holder,
    since: iso(state.acquiredAt),
    heldSeconds: seconds === undefined ? undefined : Math.floor(seconds),
    token: state.token,
    content: state.content,
    lastEditor: state.lastEditor,
    lastEditedAt: iso(state.lastEditedAt),
    releasedBy: state.releasedBy,
    releasedAt: iso(state.releasedAt),
    releaseReason: state.releaseReason,
    holdTimeoutSeconds: state.holdTimeoutSeconds,
    /** Callers waiting in line (`avail?wait=`), oldest first. */
    waiting: line.map((w) => ({ user: w.user, since: iso(w.since) })),
  };
}

export function checkText(state: LockState, now: Date): string {
  const name = title(state.name);
  const status = isHeld(state)
    ? `${name} is being edited by ${state.holder} since ${iso(state.acquiredAt)} (${Math.floor(heldSeconds(state, now) ?? 0)} s).`
    : `${name} is available.`;
  const edited = state.lastEditor
    ? `\nLast edited by ${state.lastEditor} at ${iso(state.lastEditedAt)}.`
    : '';
  const content = state.content ? `\n\n${state.content}` : '';
  return `${status}${edited}${content}\n`;
}

export function waitSentence(state: LockState): string {
  return `Wait: ${title(state.name)} is being edited by ${state.holder} since ${iso(state.acquiredAt)}.`;
}

/** The sentence and extra JSON fields for a refused command. */
export function describeRefusal(refusal: Refusal, ifMatch: number | undefined) {
  const { state } = refusal;
  const name = title(state.name);
  switch (refusal.code) {
    case 'locked':
      return {
        message: waitSentence(state),
        extra: { status: 'wait', holder: state.holder, since: iso(state.acquiredAt) },
      };
    case 'not_held':
      return { message: `${name} is not held by you: avail it first.`, extra: {} };
    case 'stale_token':
      return {
        message: `Your token ${ifMatch} is stale: ${name} was granted again since (token ${state.token}). Avail it again.`,
        extra: { token: state.token },
      };
    case 'superseded':
      return { message: `${name} changed hands in the meantime.`, extra: {} };
    case 'queued': {
      const waiting = (state.queue ?? []).length;
      return {
        message: `Wait: ${name} is free, but ${waiting} ${waiting === 1 ? 'person waits' : 'people wait'} in line before you; add ?wait=<seconds> to join the line.`,
        extra: { status: 'wait', waiting },
      };
    }
    case 'queue_full':
      return {
        message: `Too many people wait for ${name} already; try again later.`,
        extra: { waiting: (state.queue ?? []).length },
      };
    case 'waiting_limit':
      return {
        message: `You already wait in line for ${name}, and one user may have only so many places; wait for that answer.`,
        extra: { waiting: (state.queue ?? []).length },
      };
  }
}

/** Seconds a waiting client should wait: until the hold could expire, else a short poll. */
export function retryAfter(state: LockState, now: Date): number {
  if (!state.holdTimeoutSeconds || !state.renewedAt) return 5;
  const remaining =
    state.renewedAt.getTime() / 1000 + state.holdTimeoutSeconds - now.getTime() / 1000;
  return Math.max(1, Math.ceil(remaining));
}

/** The WebSocket frame for a lock event (section 4 of the design). */
export function eventFrame(event: LockEvent) {
  if (event.type === 'acquired') {
    return {
      type: event.type,
      lock: event.lock,
      holder: event.holder,
      since: iso(event.since),
      token: event.token,
    };
  }
  return {
    type: event.type,
    lock: event.lock,
    content: event.content,
    lastEditor: event.lastEditor,
    releasedBy: event.releasedBy,
    releasedAt: iso(event.releasedAt),
    reason: event.reason,
    token: event.token,
    holder: event.holder,
    acquiredAt: iso(event.acquiredAt),
  };
}
