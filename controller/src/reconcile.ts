import {
  isHeld,
  type HistoryStore,
  type LockService,
  type LockState,
  type LockStore,
} from '@retrospective/lock';
import { lockStatus, type LockStatus, type ServedLock } from '@retrospective/runtime';
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
  object(name: string): ServedLock | undefined;
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
    await removeLease(deps, lock);
    return undefined;
  }
  const owner = object && ownerOf(object);
  const cached = store.cached(lock);
  // Best effort: a status that cannot be written (RBAC, a quota) must not stop expiry.
  if (object)
    await mirrorStatus(deps, lock, object, cached?.state).catch((error: unknown) => {
      if (!signal.aborted)
        logger.warn({ lock, err: error }, 'could not write the status of a lock');
    });
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
    const controlling = store.ownerUid?.(lock);
    if (controlling) {
      // The Lease of a deleted Lock of the same name: it goes, and the new Lock gets a Lease of
      // its own above every token the old one handed out (nothing of the old hold carries on).
      await removeLease(deps, lock);
      return undefined;
    }
    if (!controlledByAnother(cached.raw)) {
      // A Lease of an earlier install (LOCKS), or made before its Lock: the Lock adopts it,
      // with its hold, content, token and line as they are.
      await store.adopt?.(lock, owner, { signal });
      logger.info({ lock }, 'adopted the Lease of a declared lock');
    }
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
function ownerOf(object: ServedLock) {
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

/** Records the Lease's last token as the floor, then deletes it (only while its Lock still owns it). */
async function removeLease(deps: ReconcileDeps, lock: string): Promise<void> {
  const { store, history, logger, signal } = deps;
  const owner = store.ownerUid?.(lock);
  const state = store.cached(lock)?.state;
  if (!owner || !state) return;
  await history.raiseFloor(lock, state.token, { signal });
  await store.remove?.(lock, owner, { signal });
  logger.info({ lock, token: state.token }, 'deleted the Lease of a deleted lock');
}

const controllersOf = (raw: unknown) =>
  (
    (raw as { metadata?: { ownerReferences?: { controller?: boolean }[] } } | undefined)?.metadata
      ?.ownerReferences ?? []
  ).filter((ref) => ref.controller);

/** Whether something else (another operator) controls the Lease: it is not ours to adopt. */
const controlledByAnother = (raw: unknown) => controllersOf(raw).length > 0;

function ownedBy(raw: unknown, uid: string): boolean {
  const refs = (raw as { metadata?: { ownerReferences?: { uid?: string }[] } } | undefined)
    ?.metadata?.ownerReferences;
  return raw === undefined || (refs ?? []).some((ref) => ref.uid === uid);
}

/** Writes the Lock's status when what it should say changed; never for an unchanged lock. */
async function mirrorStatus(
  deps: ReconcileDeps,
  lock: string,
  object: ServedLock,
  state: LockState | undefined,
): Promise<void> {
  const { declared, service, clock, signal } = deps;
  if (!declared) return;
  // The status as shown (one this version cannot read counts as none, and is written anew).
  const current = lockStatus.safeParse(object.status ?? {}).data;
  const shown = declared.written.get(lock) ?? current;
  const desired = desiredStatus({
    object: { ...object, status: shown },
    state,
    waiting: state ? service.liveQueue(state).length : 0,
    heldTooLongSeconds: deps.policy(lock).heldTooLongSeconds,
    now: clock(),
  });
  if (sameStatus(current, desired)) {
    declared.written.delete(lock);
    return;
  }
  if (sameStatus(declared.written.get(lock), desired)) return; // the watch has not shown it yet
  await declared.status.write(lock, desired, { signal });
  declared.written.set(lock, desired);
}
