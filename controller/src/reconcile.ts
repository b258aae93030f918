import {
  isHeld,
  type HistoryStore,
  type LockService,
  type LockState,
  type LockStore,
} from '@retrospective/lock';
import type { LockObject, LockStatus } from '@retrospective/runtime';
import type { Logger } from 'pino';
import type { EventRecorder } from './events.js';
import {
  crossesLongHold,
  isExpired,
  nextCheckIn,
  unclaimedExpiry,
  type Sighting,
} from './expiry.js';
import { desiredStatus, sameStatus, type StatusWriter } from './lock-status.js';
import type { ControllerMetrics } from './metrics.js';
import type { ReconcileOutcome } from './queue.js';

export const controllerIdentity = 'retrospective-controller';

export interface LockTimings {
  readonly holdTimeoutSeconds: number;
  readonly heldTooLongSeconds: number;
}

/** What the controller needs of `Lock` objects: the objects, and where their status goes. */
export interface DeclaredLocks {
  object(name: string): LockObject | undefined;
  readonly status: StatusWriter;
  /** The status last written per lock, until the watch shows it (so it is not written twice). */
  readonly written: Map<string, LockStatus>;
}

export interface ReconcileDeps {
  readonly store: LockStore;
  readonly service: LockService;
  readonly events: EventRecorder;
  readonly history: HistoryStore;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  /**
   * The lock's policy: the idle timeout of holds that carry none of their own (0: none) and the
   * held-too-long threshold.
   */
  readonly policy: (lock: string) => LockTimings;
  /** Declared locks (`Lock` objects): their Leases are owned by them and mirrored in status. */
  readonly declared?: DeclaredLocks | undefined;
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
  const { store, service, events, history, metrics, logger, clock, signal, declared } = deps;
  const object = declared?.object(lock);
  if (declared && !object) {
    // Deleted: its Lease goes with it. The garbage collector would delete it too (owner
    // reference), but only where kube-controller-manager runs, and later.
    const owner = store.ownerUid?.(lock);
    if (owner) {
      await store.remove?.(lock, owner, { signal });
      logger.info({ lock }, 'deleted the Lease of a deleted lock');
    }
    return undefined;
  }
  const owner = object && ownerOf(object);
  const cached = store.cached(lock);
  if (object) await mirrorStatus(deps, lock, object, cached?.state);
  if (!cached) {
    // Created above every token its earlier Leases handed out (they may have been deleted).
    await store.ensure([lock], {
      tokenFloor: (name) => history.floor(name),
      owner: () => owner,
    });
    logger.info({ lock }, 'created lock');
    return undefined;
  }
  if (owner && !ownedBy(cached.raw, owner.uid)) {
    // A Lease of an earlier install (LOCKS), or made before its Lock: the Lock adopts it, with
    // its hold, content, token and line as they are.
    await store.adopt?.(lock, owner, { signal });
    logger.info({ lock }, 'adopted the Lease of a declared lock');
  }
  const now = clock();
  const timings = deps.policy(lock);
  const state: LockState = {
    ...cached.state,
    holdTimeoutSeconds:
      cached.state.holdTimeoutSeconds ?? (timings.holdTimeoutSeconds || undefined),
  };
  const sighting = deps.sightings.get(lock);
  if (!isHeld(state)) return undefined;

  if (crossesLongHold(state, now, timings.heldTooLongSeconds, deps.longHoldCounted.get(lock))) {
    deps.longHoldCounted.set(lock, state.token);
    metrics.longHolds.inc({ lock });
    await events.record(
      lock,
      'Warning',
      'HeldTooLong',
      `${state.holder} has held ${lock} for over ${duration(timings.heldTooLongSeconds)} (token ${state.token})`,
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
  const next = nextCheckIn(state, sighting, now, timings.heldTooLongSeconds, 60_000);
  return next === undefined ? undefined : { requeueAfterMs: next };
}

/** The Lock as the controlling owner of its Lease. */
function ownerOf(object: LockObject) {
  const uid = object.metadata.uid;
  if (!uid) return undefined;
  return {
    apiVersion: 'retrospective.dev/v1alpha1',
    kind: 'Lock',
    name: object.metadata.name,
    uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function ownedBy(raw: unknown, uid: string): boolean {
  const refs = (raw as { metadata?: { ownerReferences?: { uid?: string }[] } } | undefined)
    ?.metadata?.ownerReferences;
  return raw === undefined || (refs ?? []).some((ref) => ref.uid === uid);
}

/** Writes the Lock's status when what it should say changed; never for an unchanged lock. */
async function mirrorStatus(
  deps: ReconcileDeps,
  lock: string,
  object: LockObject,
  state: LockState | undefined,
): Promise<void> {
  const { declared, service, clock, signal } = deps;
  if (!declared) return;
  const shown = declared.written.get(lock) ?? object.status;
  const desired = desiredStatus({
    object: { ...object, status: shown },
    state,
    waiting: state ? service.liveQueue(state).length : 0,
    heldTooLongSeconds: deps.policy(lock).heldTooLongSeconds,
    now: clock(),
  });
  if (sameStatus(object.status, desired)) {
    declared.written.delete(lock);
    return;
  }
  if (sameStatus(declared.written.get(lock), desired)) return; // the watch has not shown it yet
  await declared.status.write(lock, desired, { signal });
  declared.written.set(lock, desired);
}
