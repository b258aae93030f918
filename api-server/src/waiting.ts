import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  isHeld,
  liveQueue,
  type LockService,
  type LockStore,
  type MutationResult,
} from '@retrospective/lock';
import type { Metrics } from './metrics.js';

export interface WaitingRoomOptions {
  readonly service: LockService;
  readonly store: LockStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  /** How long a waiter's entry counts without its replica renewing it (WAIT_QUEUE_TTL_SECONDS). */
  readonly ttlMs: number;
  /** Live waiters a lock's line may hold (WAIT_QUEUE_MAX). */
  readonly maxWaiters: number;
}

/** One caller of this replica waiting in a lock's line. */
interface Pending {
  readonly id: string;
  readonly lock: string;
  readonly user: string;
  readonly holdTimeoutSeconds: number | undefined;
  readonly started: number;
  /** Set once the caller was answered or left: a grant after that is handed straight back. */
  done: boolean;
  settle(result: MutationResult): void;
}

/**
 * Blocking acquire with first come, first served hand-over across replicas. The line lives in
 * the lock itself (its Lease), so every replica sees it; a free lock may only be taken by the
 * waiter at the head, and only the replica holding that waiter's request takes it, the moment
 * its watch shows the release. Each replica pushes its waiters' entries forward while they wait
 * (every TTL / 3); the entries of a replica that died stop counting once their TTL passes.
 */
export class WaitingRoom {
  private readonly pending = new Map<string, Pending>();
  /** Locks with a grant attempt in flight, and those to look at again once it is done. */
  private readonly attempting = new Set<string>();
  private readonly again = new Set<string>();
  /** Per lock: a look when someone else's head entry would stop counting. */
  private readonly headTimers = new Map<string, NodeJS.Timeout>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: WaitingRoomOptions) {
    this.unsubscribe = options.store.subscribe((change) => {
      if (!change.next || !options.service.has(change.name)) return;
      options.metrics.queueLength.set(
        { lock: change.name },
        liveQueue(change.next, options.clock()).length,
      );
      if (this.waitingFor(change.name).length) this.kick(change.name);
    });
    this.heartbeat = setInterval(() => void this.beat(), Math.max(500, options.ttlMs / 3));
    this.heartbeat.unref();
  }

  /** Callers of this replica waiting now. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * `avail`, waiting in line up to `seconds` when someone else holds the lock (or others wait
   * before us). Resolves with the grant, or with a Wait refusal when the time runs out or `signal`
   * aborts (the client went away); a grant that races with either is released at once.
   */
  async avail(
    lock: string,
    user: string,
    holdTimeoutSeconds: number | undefined,
    seconds: number,
    signal: AbortSignal,
  ): Promise<MutationResult> {
    const { service, clock, ttlMs, maxWaiters } = this.options;
    const first = await service.execute(lock, { kind: 'avail', user, holdTimeoutSeconds });
    if (first.ok || seconds <= 0 || !['locked', 'queued'].includes(first.refusal.code))
      return first;
    if (signal.aborted) return first;
    const id = randomUUID();
    const now = clock();
    const waiter = { id, user, since: now, expires: new Date(now.getTime() + ttlMs) };
    const joined = await service.execute(lock, { kind: 'enqueue', waiter, max: maxWaiters });
    if (!joined.ok) return joined;
    return new Promise<MutationResult>((resolve) => {
      const entry: Pending = {
        id,
        lock,
        user,
        holdTimeoutSeconds,
        started: performance.now(),
        done: false,
        settle: (result) => {
          if (entry.done) return;
          entry.done = true;
          clearTimeout(timer);
          signal.removeEventListener('abort', abandon);
          this.pending.delete(id);
          resolve(result);
        },
      };
      const giveUp = (outcome: 'timeout' | 'abandoned') => {
        if (entry.done) return;
        this.observeWait(entry, outcome);
        entry.settle(this.waitRefusal(lock));
        void this.leave([entry]);
      };
      const abandon = () => giveUp('abandoned');
      const timer = setTimeout(() => giveUp('timeout'), seconds * 1000);
      signal.addEventListener('abort', abandon, { once: true });
      this.pending.set(id, entry);
      this.kick(lock);
    });
  }

  /** Answers every waiter with Wait and takes them out of the lines (the replica is stopping). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const timer of this.headTimers.values()) clearTimeout(timer);
    this.unsubscribe();
    const all = [...this.pending.values()];
    for (const entry of all) {
      this.observeWait(entry, 'abandoned');
      entry.settle(this.waitRefusal(entry.lock));
    }
    await this.leave(all);
  }

  private waitingFor(lock: string): Pending[] {
    return [...this.pending.values()].filter((p) => p.lock === lock);
  }

  private waitRefusal(lock: string): MutationResult {
    const state = this.options.service.state(lock);
    return {
      ok: false,
      refusal: { code: isHeld(state) ? 'locked' : 'queued', state },
      raced: false,
    };
  }

  private observeWait(entry: Pending, outcome: 'granted' | 'timeout' | 'abandoned'): void {
    this.options.metrics.waitDuration.observe(
      { lock: entry.lock, outcome },
      (performance.now() - entry.started) / 1000,
    );
  }

  /** Looks at a lock now, or right after the look in flight. */
  private kick(lock: string): void {
    if (this.attempting.has(lock)) {
      this.again.add(lock);
      return;
    }
    this.attempting.add(lock);
    void this.attempt(lock).finally(() => {
      this.attempting.delete(lock);
      if (this.again.delete(lock)) this.kick(lock);
    });
  }

  /** Takes a free lock for our waiter at the head of its line, if there is one. */
  private async attempt(lock: string): Promise<void> {
    const { service, store, clock, logger, metrics } = this.options;
    clearTimeout(this.headTimers.get(lock));
    const state = store.cached(lock)?.state;
    if (!state || isHeld(state)) return; // the release will bring us back
    const now = clock();
    const head = liveQueue(state, now)[0];
    if (!head) return;
    const entry = this.pending.get(head.id);
    if (!entry) {
      // Someone else's turn; if their replica is gone, their entry stops counting at `expires`.
      const wait = head.expires.getTime() - now.getTime() + 50;
      this.headTimers.set(
        lock,
        setTimeout(() => this.kick(lock), wait),
      );
      return;
    }
    if (entry.done) return;
    try {
      const result = await service.execute(lock, {
        kind: 'avail',
        user: entry.user,
        holdTimeoutSeconds: entry.holdTimeoutSeconds,
        waiter: entry.id,
      });
      if (!result.ok) return;
      if (this.pending.get(entry.id) !== entry) {
        // The caller left while we took it: hand it straight back, they never get it.
        await service.execute(lock, {
          kind: 'release',
          user: entry.user,
          ifMatch: result.state.token,
        });
        return;
      }
      if (state.releasedAt)
        metrics.handoverGap.observe(
          { lock },
          Math.max(0, (clock().getTime() - state.releasedAt.getTime()) / 1000),
        );
      this.observeWait(entry, 'granted');
      entry.settle(result);
    } catch (error) {
      logger.warn({ err: error, lock }, 'could not hand the lock to a waiter');
    }
  }

  /** Pushes forward the entries of this replica's waiters, one write per lock. */
  private async beat(): Promise<void> {
    const { service, clock, ttlMs, logger } = this.options;
    const byLock = Map.groupBy(this.pending.values(), (p) => p.lock);
    for (const [lock, entries] of byLock) {
      try {
        await service.execute(lock, {
          kind: 'heartbeat',
          ids: entries.map((e) => e.id),
          expires: new Date(clock().getTime() + ttlMs),
        });
      } catch (error) {
        logger.warn({ err: error, lock }, 'could not renew waiters');
      }
    }
  }

  private async leave(entries: readonly Pending[]): Promise<void> {
    const byLock = Map.groupBy(entries, (p) => p.lock);
    for (const [lock, left] of byLock) {
      try {
        await this.options.service.execute(lock, { kind: 'dequeue', ids: left.map((e) => e.id) });
      } catch (error) {
        // The entries stop counting at their expiry anyway.
        this.options.logger.warn({ err: error, lock }, 'could not take waiters out of line');
      }
    }
  }
}
