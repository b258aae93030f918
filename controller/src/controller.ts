import { once } from 'node:events';
import type { HistoryStore, LockService, LockStore, StoreChange } from '@retrospective/lock';
import { statusOf } from '@retrospective/runtime';
import type { Logger } from 'pino';
import type { EventRecorder } from './events.js';
import { sight, type Sighting } from './expiry.js';
import type { ControllerMetrics } from './metrics.js';
import { WorkQueue, type ReconcileOutcome } from './queue.js';
import { reconcileLock, type DeclaredLocks, type LockTimings } from './reconcile.js';
import { recordChange } from './triggers.js';

export interface LockControllerDeps {
  readonly store: LockStore;
  readonly service: LockService;
  readonly events: EventRecorder;
  readonly history: HistoryStore;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
  readonly clock?: () => Date;
  /** Each lock's idle timeout and held-too-long threshold. */
  readonly policy: (lock: string) => LockTimings;
  /** Declared locks (`Lock` objects), when locks are declared rather than listed. */
  readonly declared?: Omit<DeclaredLocks, 'written'> | undefined;
}

/**
 * Wires the lock watch to a work queue. Every replica keeps its sightings current; only while
 * leading does it reconcile and record Events and history, and every write of a term carries
 * that term's signal, so losing the lead stops them mid-flight.
 */
export class LockController {
  private readonly sightings = new Map<string, Sighting>();
  private readonly longHoldCounted = new Map<string, number>();
  private readonly queue: WorkQueue;
  private readonly clock: () => Date;
  /** Side effects of changes run in order, so history entries never swap. */
  private effects: Promise<void> = Promise.resolve();
  /** The current term of leadership; undefined while following. */
  private term: AbortSignal | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeCatalog: (() => void) | undefined;
  private readonly declared: DeclaredLocks | undefined;

  constructor(private readonly deps: LockControllerDeps) {
    this.clock = deps.clock ?? (() => new Date());
    this.declared = deps.declared && { ...deps.declared, written: new Map() };
    const { metrics, logger } = deps;
    this.queue = new WorkQueue({
      reconcile: (lock) => this.reconcile(lock),
      isConflict: (error) => statusOf(error) === 409,
      onSync: (lock, result, seconds, error) => {
        metrics.reconciles.inc({ result });
        metrics.reconcileDuration.observe(seconds);
        if (result === 'error') logger.warn({ lock, err: error }, 'reconcile failed; backing off');
      },
    });
    metrics.readFrom(() => ({
      leader: this.isLeading,
      now: this.clock(),
      locks: deps.service.locks.flatMap((lock) => deps.store.cached(lock)?.state ?? []),
    }));
  }

  get isLeading(): boolean {
    return this.term !== undefined && !this.term.aborted;
  }

  /** Starts following the store; call once the store is started. */
  start(): void {
    this.unsubscribe = this.deps.store.subscribe((change) => this.onChange(change));
    // A Lock declared, changed or deleted: make its Lease and status follow.
    this.unsubscribeCatalog = this.deps.service.catalog.subscribe(({ name, policy }) => {
      // Its series, with its own threshold (again when its spec changes).
      if (policy) this.deps.metrics.follow(name, this.deps.policy(name).heldTooLongSeconds);
      if (!policy) {
        this.deps.metrics.forget(name);
        this.sightings.delete(name);
        this.longHoldCounted.delete(name);
        this.declared?.written.delete(name);
      }
      if (this.isLeading) this.queue.add(name);
    });
    // The locks known already: their series and thresholds (the policy the controller uses:
    // a Lock's spec, or the environment's for a LOCKS list) from the start.
    for (const name of this.deps.service.catalog.names())
      this.deps.metrics.follow(name, this.deps.policy(name).heldTooLongSeconds);
    for (const lock of this.deps.service.locks) {
      const state = this.deps.store.cached(lock)?.state;
      const sighting = state && sight(undefined, state, this.clock());
      if (sighting) this.sightings.set(lock, sighting);
    }
  }

  /** Reconciles until `signal` aborts; resolves once the work in flight has stopped. */
  async lead(signal: AbortSignal): Promise<void> {
    const { metrics, logger, service } = this.deps;
    if (signal.aborted) return;
    this.term = signal;
    // Statuses written in an earlier term may have been overwritten since: judge them afresh.
    this.declared?.written.clear();
    metrics.leader.set(1);
    this.queue.start();
    for (const lock of service.locks) {
      // Grants made while no controller led are in the Lease only: record their floor now.
      const state = this.deps.store.cached(lock)?.state;
      if (state) this.record({ name: lock, prev: undefined, next: state }, signal);
      this.queue.add(lock);
    }
    logger.info('started leading');
    await once(signal, 'abort');
    this.term = undefined;
    metrics.leader.set(0);
    await this.queue.stop();
    await this.effects;
    logger.info('stopped leading');
  }

  /** One pass over one lock in the current term; nothing while following. */
  async reconcile(lock: string): Promise<ReconcileOutcome> {
    const signal = this.term;
    if (!signal || signal.aborted) return undefined;
    // A lock about to be created again must first have its deleted Lease's last token recorded.
    if (!this.deps.store.cached(lock)) await this.effects;
    const { sightings, longHoldCounted, clock } = this;
    const { declared } = this;
    return reconcileLock(
      { ...this.deps, clock, sightings, longHoldCounted, signal, declared },
      lock,
    );
  }

  /** Stops following the store and waits for recorded effects. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribeCatalog?.();
    await this.effects;
  }

  private onChange(change: StoreChange): void {
    if (!this.deps.service.has(change.name)) return;
    const sighting = change.next
      ? sight(this.sightings.get(change.name), change.next, this.clock())
      : undefined;
    if (sighting) this.sightings.set(change.name, sighting);
    else this.sightings.delete(change.name);
    const signal = this.term;
    if (!signal || signal.aborted) return;
    this.record(change, signal);
    this.queue.add(change.name);
  }

  /** Records a change's Events, history and token floor, in order with the changes before it. */
  private record(change: StoreChange, signal: AbortSignal): void {
    this.effects = this.effects
      .then(() => recordChange(this.deps, change, { signal }))
      .catch((error: unknown) => {
        if (!signal.aborted)
          this.deps.logger.warn({ lock: change.name, err: error }, 'could not record change');
      });
  }
}
