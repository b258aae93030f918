import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { heldSeconds, isHeld, type LockState } from '@retrospective/lock';
import { removeLockSeries } from '@retrospective/runtime';

const prefix = 'retrospective_';

/** What the lock gauges read at scrape time; only the leader reports lock state. */
export interface LockSnapshot {
  readonly leader: boolean;
  readonly now: Date;
  readonly locks: readonly LockState[];
}

export interface ControllerMetricsOptions {
  /** The configured locks: their counters start at 0, so "none yet" reads as 0, not as no data. */
  readonly locks: readonly string[];
  /** Exported, so alerts compare holds with the threshold the controller uses. */
  readonly heldTooLongSeconds: number;
  /** An api-server's registry to run in-process (make run); by default one of its own. */
  readonly registry?: Registry;
}

/** The controller's metrics, on its own registry with the process metrics unless given one. */
export function createControllerMetrics({
  locks,
  heldTooLongSeconds,
  registry,
}: ControllerMetricsOptions) {
  const own = registry ?? new Registry();
  if (!registry) collectDefaultMetrics({ register: own });
  const registers = [own];
  let source: () => LockSnapshot = () => ({ leader: false, now: new Date(), locks: [] });
  const each = (fn: (state: LockState, now: Date) => void) => {
    const snapshot = source();
    if (snapshot.leader) for (const state of snapshot.locks) fn(state, snapshot.now);
  };
  const metrics = {
    registry: own,
    /** Sets where the lock gauges read from. */
    readFrom(read: () => LockSnapshot) {
      source = read;
    },
    lockHeld: new Gauge({
      name: `${prefix}lock_held`,
      help: '1 while the lock is held, else 0.',
      labelNames: ['lock'] as const,
      registers,
      collect() {
        this.reset();
        each((s) => this.set({ lock: s.name }, isHeld(s) ? 1 : 0));
      },
    }),
    lockHeldSeconds: new Gauge({
      name: `${prefix}lock_held_seconds`,
      help: 'How long the current hold has lasted, 0 when free.',
      labelNames: ['lock'] as const,
      registers,
      collect() {
        this.reset();
        each((s, now) => this.set({ lock: s.name }, heldSeconds(s, now) ?? 0));
      },
    }),
    lockHolderInfo: new Gauge({
      name: `${prefix}lock_holder_info`,
      help: 'Always 1, labelled with the current holder of each held lock.',
      labelNames: ['lock', 'holder'] as const,
      registers,
      collect() {
        this.reset();
        each((s) => s.holder && this.set({ lock: s.name, holder: s.holder }, 1));
      },
    }),
    holdDuration: new Histogram({
      name: `${prefix}lock_hold_duration_seconds`,
      help: 'Duration of finished holds, observed at release.',
      labelNames: ['lock'] as const,
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400],
      registers,
    }),
    longHolds: new Counter({
      name: `${prefix}lock_long_holds_total`,
      help: 'Holds that crossed the held-too-long threshold, each counted once.',
      labelNames: ['lock'] as const,
      registers,
    }),
    expirations: new Counter({
      name: `${prefix}lock_expirations_total`,
      help: 'Holds released by the controller because they timed out.',
      labelNames: ['lock'] as const,
      registers,
    }),
    heldTooLongThreshold: new Gauge({
      name: `${prefix}lock_held_too_long_threshold_seconds`,
      help: "The hold duration past which a hold of the lock counts as held too long (its Lock's heldTooLongSeconds, or HELD_TOO_LONG_SECONDS).",
      labelNames: ['lock'] as const,
      registers,
    }),
    leader: new Gauge({
      name: `${prefix}controller_leader`,
      help: '1 while this controller process is the elected leader.',
      registers,
    }),
    reconciles: new Counter({
      name: `${prefix}reconcile_total`,
      help: 'Reconciles of lock Leases, by result (success, error, conflict).',
      labelNames: ['result'] as const,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: `${prefix}reconcile_duration_seconds`,
      help: 'Time spent in one reconcile.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  };
  for (const result of ['success', 'error', 'conflict']) metrics.reconciles.inc({ result }, 0);
  /**
   * Starts a lock's counters at 0, so its first long hold reads as an increase, and exports its
   * held-too-long threshold (again when its policy changes), which the alerts compare holds with.
   */
  const follow = (lock: string, threshold = heldTooLongSeconds) => {
    metrics.longHolds.inc({ lock }, 0);
    metrics.expirations.inc({ lock }, 0);
    metrics.heldTooLongThreshold.set({ lock }, threshold);
  };
  /** Removes the series of a lock that is gone (a deleted `Lock`). */
  const forget = (lock: string) => {
    for (const metric of [
      metrics.longHolds,
      metrics.expirations,
      metrics.holdDuration,
      metrics.heldTooLongThreshold,
    ])
      removeLockSeries(metric, lock);
  };
  for (const lock of locks) follow(lock);
  metrics.leader.set(0);
  return { ...metrics, follow, forget };
}

export type ControllerMetrics = ReturnType<typeof createControllerMetrics>;
