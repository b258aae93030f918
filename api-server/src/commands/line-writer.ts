import {
  UnknownLockError,
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
  /** A line write failed (the API server unreachable): entries lapse meanwhile, then rejoin. */
  readonly onError: (error: unknown) => void;
}

interface Join {
  readonly waiter: Waiter;
  resolve(admitted: LockState | undefined): void;
  reject(error: unknown): void;
}

/**
 * How long a line write waits, so that a release decided on the same version goes first (measured
 * with 20 waiters on two replicas: 40 hand-overs a second without it, 54 with 10 ms).
 */
const yieldMs = 10;

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

  constructor(private readonly options: LineWriterOptions) {}

  /** Puts `waiter` in line; resolves with the line it is in, or undefined when it was left out. */
  join(waiter: Waiter): Promise<LockState | undefined> {
    return new Promise((resolve, reject) => {
      this.joins.set(waiter.id, { waiter, resolve, reject });
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
    this.flush();
  }

  /** Renews this replica's waiters, putting back any that are missing. */
  renewAll(): void {
    this.renew = true;
    this.flush();
  }

  /** Resolves once nothing is left to write (the replica is stopping). */
  async idle(): Promise<void> {
    clearTimeout(this.retry);
    while (this.running) await this.running;
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
    const { lock, service, serial, limits } = this.options;
    // Upkeep of the line yields to what everyone waits for: a holder's release usually follows
    // the answer that let a waiter go, and both would be decided on the same version. A moment's
    // delay lets the release land first (the line write then decides on it) rather than losing
    // its compare-and-swap to the line write.
    await new Promise((r) => setTimeout(r, yieldMs));
    const joins = [...this.joins.values()];
    const leave = [...this.leaves, ...this.unwritten];
    const renew = this.renew;
    this.joins.clear();
    this.leaves.clear();
    this.unwritten.clear();
    this.renew = false;
    if (!joins.length && !leave.length && !renew) return;
    let renewed: readonly Waiter[] = [];
    try {
      // The renewals are read at each attempt: a waiter answered meanwhile (handed the lock while
      // this write was losing its compare-and-swap) must not be put back in line.
      const result = await serial(() =>
        service.execute(lock, () => {
          renewed = renew ? this.options.renewals() : [];
          const join = [...joins.map((j) => j.waiter), ...renewed];
          const { maxWaiters: max, maxPerUser: perUser } = limits();
          return { kind: 'line', join, leave, max, perUser };
        }),
      );
      const state = result.ok ? result.state : undefined;
      const inLine = (id: string) => state?.queue?.some((w) => w.id === id) ?? false;
      for (const j of joins) j.resolve(inLine(j.waiter.id) ? state : undefined);
      const leftOut = renewed.filter((w) => !inLine(w.id)).map((w) => w.id);
      if (state && leftOut.length) this.options.onLeftOut(leftOut, state);
    } catch (error) {
      for (const j of joins) j.reject(error);
      // A lock that is no longer served (its Lock deleted) has no line left to leave.
      if (!(error instanceof UnknownLockError)) for (const id of leave) this.unwritten.add(id);
      this.options.onError(error);
    }
  }
}
