import { heldSeconds, isHeld, type LockState } from '@retrospective/lock';

/**
 * When this controller last saw a hold change (client-go's rule): expiry is measured on the
 * local clock from that moment, never by comparing our clock with the writer's renewTime.
 */
export interface Sighting {
  readonly key: string;
  readonly seenAt: number;
}

/** What identifies "the same hold, not renewed since": holder, token and renewTime. */
function holdKey(state: LockState): string | undefined {
  if (!isHeld(state)) return undefined;
  return `${state.holder}\u0000${state.token}\u0000${state.renewedAt?.toISOString() ?? ''}`;
}

/** The sighting after observing `state` at `now`: kept while the hold is unchanged, else reset. */
export function sight(
  prev: Sighting | undefined,
  state: LockState,
  now: Date,
): Sighting | undefined {
  const key = holdKey(state);
  if (key === undefined) return undefined;
  return prev?.key === key ? prev : { key, seenAt: now.getTime() };
}

/**
 * When the hold expires on the local clock, or undefined if it never does: its idle timeout, or
 * sooner the time a release's hand-over has to be taken up by its waiter's replica.
 */
export function expiresAt(state: LockState, sighting: Sighting | undefined): Date | undefined {
  if (!isHeld(state) || !sighting) return undefined;
  const limits = [state.holdTimeoutSeconds, state.unclaimedSeconds].filter(
    (s): s is number => s !== undefined && s > 0,
  );
  if (!limits.length) return undefined;
  return new Date(sighting.seenAt + Math.min(...limits) * 1000);
}

export function isExpired(state: LockState, sighting: Sighting | undefined, now: Date): boolean {
  const at = expiresAt(state, sighting);
  return at !== undefined && now.getTime() >= at.getTime();
}

/** Whether it is the hand-over nobody took up that makes the hold expire now (not its idling). */
export function unclaimedExpiry(state: LockState, sighting: Sighting | undefined, now: Date) {
  return (
    state.unclaimedSeconds !== undefined &&
    sighting !== undefined &&
    now.getTime() >= sighting.seenAt + state.unclaimedSeconds * 1000
  );
}

/**
 * True when the hold has crossed the "held too long" threshold and this hold (its token) was
 * not counted yet: each long hold is counted exactly once.
 */
export function crossesLongHold(
  state: LockState,
  now: Date,
  thresholdSeconds: number,
  lastCountedToken: number | undefined,
): boolean {
  const seconds = heldSeconds(state, now);
  return seconds !== undefined && seconds >= thresholdSeconds && lastCountedToken !== state.token;
}

/** Milliseconds until the next time-based decision (expiry or threshold), capped at `maxMs`. */
export function nextCheckIn(
  state: LockState,
  sighting: Sighting | undefined,
  now: Date,
  thresholdSeconds: number,
  maxMs: number,
): number | undefined {
  if (!isHeld(state)) return undefined;
  const candidates = [maxMs];
  const expiry = expiresAt(state, sighting);
  if (expiry) candidates.push(expiry.getTime() - now.getTime());
  const threshold = state.acquiredAt.getTime() + thresholdSeconds * 1000 - now.getTime();
  if (threshold > 0) candidates.push(threshold);
  return Math.max(0, Math.min(...candidates));
}
