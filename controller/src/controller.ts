import { statusOf, type LockService, type LockStore, type StoreChange } from '@retrospective/lock';
import type { Logger } from 'pino';
import type { EventRecorder } from './events.js';
import { sight, type Sighting } from './expiry.js';
import type { HistoryStore } from './history.js';
import type { ControllerMetrics } from './metrics.js';
import { WorkQueue } from './queue.js';
import { reconcileLock } from './reconcile.js';
import { recordChange } from './triggers.js';

export interface LockControllerDeps {
  readonly store: LockStore;
  readonly service: LockService;
  readonly events: EventRecorder;
  readonly history: HistoryStore;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
  readonly clock?: () => Date;
  readonly holdTimeoutSeconds: number;
  readonly heldTooLongSeconds: number;
}

/**
 * Wires the lock watch to a work queue. Every replica keeps its sightings current; only while
 * leading does it reconcile and record Events and history, and losing the lead stops both.
 */
export class LockController {
  private readonly sightings = new Map<string, Sighting>();
  private readonly longHoldCounted = new Map<string, number>();
  private readonly queue: WorkQueue;
  private readonly clock: () => Date;
  /** Side effects of changes run in order per lock, so history entries never swap. */
  private effects: Promise<void> = Promise.resolve();
  private leading = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly deps: LockControllerDeps) {
    this.clock = deps.clock ?? (() => new Date());
    const { metrics, logger } = deps;
    this.queue = new WorkQueue({
      reconcile: (lock) =>
        this.leading
          ? reconcileLock(
              {
                ...deps,
                clock: this.clock,
                sightings: this.sightings,
                longHoldCounted: this.longHoldCounted,
              },
              lock,
            )
          : Promise.resolve(undefined),
      isConflict: (error) => statusOf(error) === 409,
      onSync: (lock, result, seconds, error) => {
        metrics.reconciles.inc({ result });
        metrics.reconcileDuration.observe(seconds);
        if (result === 'error') logger.warn({ lock, err: error }, 'reconcile failed; backing off');
      },
    });
    metrics.readFrom(() => ({
      leader: this.leading,
      now: this.clock(),
      locks: deps.service.locks.flatMap((lock) => deps.store.cached(lock)?.state ?? []),
    }));
  }

  get isLeading(): boolean {
    return this.leading;
  }

  /** Starts following the store; call once the store is started. */
  start(): void {
    this.unsubscribe = this.deps.store.subscribe((change) => this.onChange(change));
    for (const lock of this.deps.service.locks) {
      const state = this.deps.store.cached(lock)?.state;
      const sighting = state && sight(undefined, state, this.clock());
      if (sighting) this.sightings.set(lock, sighting);
    }
  }

  startLeading(): void {
    this.leading = true;
    this.deps.metrics.leader.set(1);
    this.queue.start();
    for (const lock of this.deps.service.locks) this.queue.add(lock);
    this.deps.logger.info('started leading');
  }

  async stopLeading(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    this.deps.metrics.leader.set(0);
    await this.queue.stop();
    this.deps.logger.info('stopped leading');
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.stopLeading();
    await this.effects;
  }

  private onChange(change: StoreChange): void {
    if (!this.deps.service.has(change.name)) return;
    const sighting = change.next
      ? sight(this.sightings.get(change.name), change.next, this.clock())
      : undefined;
    if (sighting) this.sightings.set(change.name, sighting);
    else this.sightings.delete(change.name);
    if (!this.leading) return;
    this.effects = this.effects
      .then(() => recordChange(this.deps, change))
      .catch((error: unknown) =>
        this.deps.logger.warn({ lock: change.name, err: error }, 'could not record change'),
      );
    this.queue.add(change.name);
  }
}
