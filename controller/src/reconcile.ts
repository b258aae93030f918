import {
  isHeld,
  type HistoryStore,
  type LockService,
  type LockState,
  type LockStore,
} from '@retrospective/lock';
import type { Logger } from 'pino';
import type { EventRecorder } from './events.js';
import {
  crossesLongHold,
  isExpired,
  nextCheckIn,
  unclaimedExpiry,
  type Sighting,
} from './expiry.js';
import type { ControllerMetrics } from './metrics.js';
import type { ReconcileOutcome } from './queue.js';

export const controllerIdentity = 'retrospective-controller';

export interface ReconcileDeps {
  readonly store: LockStore;
  readonly service: LockService;
  readonly events: EventRecorder;
  readonly history: HistoryStore;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  /** Applies to holds that carry no timeout of their own; 0 means none. */
  readonly holdTimeoutSeconds: number;
  readonly heldTooLongSeconds: number;
  /** Per-lock memory the reconciles share: sightings and the last long hold counted. */
  readonly sightings: Map<string, Sighting>;
  readonly longHoldCounted: Map<string, number>;
  /** Aborted when this controller stops leading: no write of this pass may land after that. */
  readonly signal: AbortSignal;
}

const duration = (seconds: number) =>
  seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;

/**
 * One pass over one lock: create it if missing, count a hold crossing the held-too-long
 * threshold once, expire a hold idle past its timeout or a hand-over nobody took up (CAS, pinned
 * to the hold judged; the lock goes to the next in line with a higher token, or is free, so the
 * old holder's If-Match is refused either way), and say when to look again.
 */
export async function reconcileLock(deps: ReconcileDeps, lock: string): Promise<ReconcileOutcome> {
  const { store, service, events, history, metrics, logger, clock, signal } = deps;
  const cached = store.cached(lock);
  if (!cached) {
    // Created above every token its earlier Leases handed out (they may have been deleted).
    await store.ensure([lock], { tokenFloor: (name) => history.floor(name) });
    logger.info({ lock }, 'created lock');
    return undefined;
  }
  const now = clock();
  const state: LockState = {
    ...cached.state,
    holdTimeoutSeconds: cached.state.holdTimeoutSeconds ?? (deps.holdTimeoutSeconds || undefined),
  };
  const sighting = deps.sightings.get(lock);
  if (!isHeld(state)) return undefined;

  if (crossesLongHold(state, now, deps.heldTooLongSeconds, deps.longHoldCounted.get(lock))) {
    deps.longHoldCounted.set(lock, state.token);
    metrics.longHolds.inc({ lock });
    await events.record(
      lock,
      'Warning',
      'HeldTooLong',
      `${state.holder} has held ${lock} for over ${duration(deps.heldTooLongSeconds)} (token ${state.token})`,
      { signal },
    );
  }

  if (isExpired(state, sighting, now)) {
    const result = await service.execute(
      lock,
      {
        kind: 'expire',
        by: controllerIdentity,
        holder: state.holder,
        token: state.token,
        renewedAt: state.renewedAt,
        unclaimed: unclaimedExpiry(state, sighting, now),
      },
      { signal },
    );
    if (result.ok) {
      metrics.expirations.inc({ lock });
      logger.info({ lock, user: state.holder, token: state.token }, 'hold expired');
    }
    return undefined; // the watch brings the new state, which queues the lock again
  }
  const next = nextCheckIn(state, sighting, now, deps.heldTooLongSeconds, 60_000);
  return next === undefined ? undefined : { requeueAfterMs: next };
}
