import {
  admits,
  isHeld,
  LockContendedError,
  UnknownLockError,
  type LineCommand,
  type LineRider,
  type LockService,
  type LockState,
  type Waiter,
} from '@retrospective/lock';

export interface LineWriterOptions {
  readonly lock: string;
  readonly service: LockService;
  /**
   * Fresh entries for this replica's waiters in line (renewed, or put back when something dropped
   * them); read when the write runs, so a waiter granted meanwhile is not among them.
   */
  readonly renewals: () => readonly Waiter[];
  /** Runs a write of this lock after this replica's other writes of it (see WaitingRoom). */
  readonly serial: <T>(fn: () => Promise<T>) => Promise<T>;
  /** The lock's line limits now (a `Lock`'s spec may change while it is served). */
  readonly limits: () => { readonly maxWaiters: number; readonly maxPerUser: number };
  /** Waiters of this replica that were renewed but could not be put back (no place left). */
  readonly onLeftOut: (ids: readonly string[], line: LockState) => void;
  /**
   * A line write failed: the API server unreachable (entries lapse meanwhile, then rejoin), or
   * every attempt lost to other writers (the batch is tried again).
   */
  readonly onError: (error: unknown) => void;
}

interface Join {
  readonly waiter: Waiter;
  /** Who was in line when its caller came: it never goes ahead of them (see `behind`). */
  readonly ahead: ReadonlySet<string>;
  resolve(admitted: LockState | undefined): void;
  reject(error: unknown): void;
}

/** What one write of the line carries: joins, leaves, and whether to renew. */
interface Batch {
  readonly joins: readonly Join[];
  readonly leave: readonly string[];
  readonly renew: boolean;
  /** The renewals of the last attempt. */
  renewed: readonly Waiter[];
}

/**
 * How long a line write waits while the lock is free, so that a release decided on the same
 * version goes first (measured with 20 waiters on two replicas: 40 hand-overs a second without
 * it, 54 with 10 ms).
 */
const yieldMs = 10;

/**
 * How long a join waits while the lock is held and others wait ahead: long enough for a holder's
 * release on this replica to carry it (no write of its own, no compare-and-swap lost by either).
 * A join written late loses no place to those written meanwhile who came after it: the line is
 * ordered by when each waiter came (`since`). Measured with 20 waiters on two replicas: 1.5
 * writes and 1.2 lost compare-and-swaps per hand-over with a 10 ms wait, 1.1 and 0.2-0.35 with
 * 100 ms (places then in order of writing), 1.04 and 0.11-0.18 with 500 ms (in order of `since`).
 */
const carryWindowMs = 500;

/**
 * How long renewals alone wait for a ride: short, so that entries are renewed well inside the
 * shortest WAIT_QUEUE_TTL_SECONDS (3 s, renewed every second).
 */
const renewWindowMs = 100;

/**
 * A line this short or shorter is served within a hand-over or two: a join waits no longer for a
 * release to carry it, or the line could run dry before it is written.
 */
export const shortLine = 2;

/** How long leaves whose write failed wait before they are tried again on their own. */
const retryLeavesMs = 1000;

/**
 * One replica's writes to one lock's line, batched: every join, leave and renewal waiting when a
 * write starts goes into that one write. However many callers join at once, a replica has one
 * line write in flight per lock, so conflicts grow with replicas, not with waiters, and the
 * holder's own release is not crowded out.
 */
export class LineWriter {
  private readonly joins = new Map<string, Join>();
  private readonly leaves = new Set<string>();
  /** Leaves whose write failed: tried again with the next write, or on their own a little later. */
  private readonly unwritten = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private renew = false;
  private running: Promise<void> | undefined;
  /** A batch out with a command's write: settles when that write is over. */
  private out: Promise<void> | undefined;
  /** Whether run() is writing a batch of its own. */
  private writing = false;
  /** Rounds in a row whose every write lost its compare-and-swap: the next waits longer. */
  private contended = 0;
  /** Set once the replica stops: a contended batch then fails as any other. */
  private stopping = false;
  /** Whether the next write should not wait long (leaves, changes given back, a free lock). */
  private hurried = false;
  /** Ends the wait of the write to come, if one waits. */
  private wake: (() => void) | undefined;

  constructor(private readonly options: LineWriterOptions) {}

  /**
   * Puts `waiter` in line; resolves with the state it was admitted to (in line, or handed the
   * lock by a release that carried the join), or undefined when it was left out.
   */
  join(waiter: Waiter, ahead: ReadonlySet<string> = new Set()): Promise<LockState | undefined> {
    return new Promise((resolve, reject) => {
      this.joins.set(waiter.id, { waiter, ahead, resolve, reject });
      this.flush();
    });
  }

  /** Takes waiters out of line (answered, timed out or gone). */
  leave(ids: readonly string[]): void {
    for (const id of ids) {
      this.leaves.add(id);
      this.joins.get(id)?.resolve(undefined);
      this.joins.delete(id);
    }
    // A leave does not wait for a release to carry it: a hand-over to someone gone costs more.
    this.hurry();
    this.flush();
  }

  /** The next write waits only briefly (the lock became free, or someone left). */
  hurry(): void {
    this.hurried = true;
    this.wake?.();
  }

  /** A write waiting now waits no longer (the line is nearly dry: it may run out first). */
  nudge(): void {
    this.wake?.();
  }

  /** Renews this replica's waiters, putting back any that are missing. */
  renewAll(): void {
    this.renew = true;
    this.flush();
  }

  /** Resolves once nothing is left to write (the replica is stopping). */
  async idle(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retry);
    this.hurry();
    for (let busy = this.running ?? this.out; busy; busy = this.running ?? this.out) await busy;
  }

  /**
   * Hands what is waiting to be written to a command of this replica that is about to write the
   * lock anyway (a holder's release): the changes ride in its write, and are given back to be
   * written here when that write does not carry them. Undefined when nothing waits.
   */
  carry(): LineRider | undefined {
    // One batch out at a time, so that the line's changes land in the order they were made (a
    // join must not land after its own leave).
    if (this.writing || this.out) return undefined;
    const batch = this.take();
    if (!batch) return undefined;
    let back: () => void = () => undefined;
    this.out = new Promise<void>((resolve) => (back = resolve));
    return {
      command: () => this.command(batch),
      done: (carried) => {
        try {
          if (carried) this.settle(batch, carried);
          else this.giveBack(batch);
        } catch (error) {
          this.options.onError(error);
        } finally {
          this.out = undefined;
          back();
        }
      },
    };
  }

  private flush(): void {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
      if (this.joins.size || this.leaves.size || this.renew) this.flush();
      else if (this.unwritten.size && !this.retry) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.flush();
        }, retryLeavesMs);
        this.retry.unref();
      }
    });
  }

  private async run(): Promise<void> {
    // Upkeep of the line yields to what everyone waits for: a holder's release usually follows
    // the answer that let a waiter go, and both would be decided on the same version. A moment's
    // delay lets the release land first (the line write then decides on it) rather than losing
    // its compare-and-swap to the line write; a release of this replica meanwhile carries it.
    await this.pause();
    // A batch out with a command: it lands first, or comes back to be written here.
    while (this.out) await this.out;
    const batch = this.take();
    if (!batch) return;
    this.writing = true;
    try {
      const { lock, service, serial } = this.options;
      const result = await serial(() => service.execute(lock, () => this.command(batch)));
      this.contended = 0;
      this.settle(batch, result.ok ? result.state : undefined);
    } catch (error) {
      if (error instanceof LockContendedError && batch.joins.length && !this.stopping) {
        // Nothing was written, the store answered every time: the joins go again after a pause
        // that grows with each such round, rather than their callers hearing 503. (Each caller's
        // own timer still answers it when its time runs out, and takes it out of the batch.)
        this.contended++;
        this.options.onError(error);
        this.putBack(batch);
        return;
      }
      for (const j of batch.joins) j.reject(error);
      // A lock that is no longer served (its Lock deleted) has no line left to leave.
      if (!(error instanceof UnknownLockError))
        for (const id of batch.leave) this.unwritten.add(id);
      this.options.onError(error);
    } finally {
      this.writing = false;
    }
  }

  /**
   * The wait before a write: while the lock is held and the line is long, the carry window (the
   * renewal window for renewals alone); a moment otherwise.
   */
  private pause(): Promise<void> {
    const { service, lock } = this.options;
    const state = service.peek(lock);
    const long =
      !this.hurried &&
      state !== undefined &&
      isHeld(state) &&
      service.liveQueue(state).length > shortLine;
    const usual = !long ? yieldMs : this.joins.size ? carryWindowMs : renewWindowMs;
    // After rounds that lost every compare-and-swap: 50 ms, 100 ms, ... up to a second.
    const wait = this.contended ? Math.max(usual, Math.min(1000, 25 * 2 ** this.contended)) : usual;
    return new Promise<void>((resolve) => {
      const done = () => {
        this.wake = undefined;
        resolve();
      };
      let timer = setTimeout(done, wait);
      this.wake = () => {
        clearTimeout(timer);
        timer = setTimeout(done, yieldMs);
        this.wake = undefined;
      };
    });
  }

  /** Takes out everything waiting to be written, or undefined when nothing does. */
  private take(): Batch | undefined {
    const batch: Batch = {
      joins: [...this.joins.values()],
      leave: [...this.leaves, ...this.unwritten],
      renew: this.renew,
      renewed: [],
    };
    this.joins.clear();
    this.leaves.clear();
    this.unwritten.clear();
    this.renew = false;
    this.hurried = false;
    return batch.joins.length || batch.leave.length || batch.renew ? batch : undefined;
  }

  /**
   * The batch as a line command. The renewals are read at each attempt: a waiter answered
   * meanwhile (handed the lock while a write was losing its compare-and-swap) must not be put
   * back in line.
   */
  private command(batch: Batch): LineCommand {
    batch.renewed = batch.renew ? this.options.renewals() : [];
    const join = [...batch.joins.map((j) => j.waiter), ...batch.renewed];
    const behind = new Map(batch.joins.map((j) => [j.waiter.id, j.ahead]));
    const { maxWaiters: max, maxPerUser: perUser } = this.options.limits();
    return { kind: 'line', join, behind, leave: batch.leave, max, perUser };
  }

  /**
   * Answers the batch's joins from the state written (undefined: nothing was written): admitted
   * when in line, or when the write that carried them (a release) handed the lock to one.
   */
  private settle(batch: Batch, state: LockState | undefined): void {
    const admitted = (id: string) => state !== undefined && admits(state, id);
    for (const j of batch.joins) j.resolve(admitted(j.waiter.id) ? state : undefined);
    const leftOut = batch.renewed.filter((w) => !admitted(w.id)).map((w) => w.id);
    if (state && leftOut.length) this.options.onLeftOut(leftOut, state);
  }

  /** A batch a command did not carry: written here, with whatever came meanwhile. */
  private giveBack(batch: Batch): void {
    this.putBack(batch);
    // It has waited once already.
    this.hurry();
    this.flush();
  }

  /** Puts a batch back in front of what came meanwhile; a join whose caller left stays out. */
  private putBack(batch: Batch): void {
    // Its joins came first: they stay ahead of those that joined meanwhile.
    const later = [...this.joins];
    this.joins.clear();
    for (const j of batch.joins)
      if (this.leaves.has(j.waiter.id)) j.resolve(undefined);
      else this.joins.set(j.waiter.id, j);
    for (const [id, j] of later) if (!this.joins.has(id)) this.joins.set(id, j);
    for (const id of batch.leave) this.leaves.add(id);
    this.renew ||= batch.renew;
  }
}
