import { FixedCatalog, type LockCatalog } from './catalog.js';
import { decide, type Command, type Decision, type Outcome, type Refusal } from './decide.js';
import { LockContendedError, LockNotProvisionedError, UnknownLockError } from './errors.js';
import {
  admits,
  liveQueue,
  type Liveness,
  type LockState,
  type Versioned,
  type Waiter,
} from './model.js';
import { LineSightings } from './sightings.js';
import type { LockStore, StoreCallOptions } from './store.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const upkeep: ReadonlySet<Command['kind']> = new Set(['line', 'confirm']);

export type MutationResult =
  | { readonly ok: true; readonly outcome: Outcome; readonly state: LockState }
  | { readonly ok: false; readonly refusal: Refusal; readonly raced: boolean };

export type LineCommand = Extract<Command, { kind: 'line' }>;

/**
 * Changes to a lock's line that ride along in another command's write (a replica's joins and
 * leaves carried by a holder's release on the same replica), so they cost no write of their own.
 */
export interface LineRider {
  /** The line changes to carry in this attempt, read at each attempt; undefined: none. */
  command(): LineCommand | undefined;
  /**
   * Called once, when the command is over: with the state written when the write carried the
   * changes, else with undefined (refused, nothing written, failed): they are still to write.
   */
  done(carried: LockState | undefined): void;
}

export interface ExecuteOptions extends StoreCallOptions {
  /**
   * A refusal decided on the cache will do: the caller does not answer it (a caller about to
   * wait in line joins it anyway), so it is not confirmed by a read of the store.
   */
  readonly refuseOnCache?: boolean | undefined;
  /** Line changes to carry in the write, when the command writes (see LineRider). */
  readonly rider?: LineRider | undefined;
}

export interface LockServiceOptions {
  readonly store: LockStore;
  /** The locks served: a fixed list, or a catalog whose locks come and go. */
  readonly locks: readonly string[] | LockCatalog;
  readonly clock?: () => Date;
  /** Conflicting writes tolerated before giving up with LockContendedError. */
  readonly maxAttempts?: number;
  /** When waiters' entries were last seen renewed (a monotonic clock of this process). */
  readonly sightings?: LineSightings;
}

/**
 * Turns commands into compare-and-swap writes. It decides from the cache, but never refuses
 * on it: before a refusal, and after every conflict, it reads the store afresh and decides
 * again, so grants and refusals are linearizable while reads stay cheap.
 */
export class LockService {
  private readonly store: LockStore;
  readonly catalog: LockCatalog;
  private readonly clock: () => Date;
  private readonly maxAttempts: number;
  private readonly sightings: LineSightings;
  private unsubscribe: (() => void) | undefined;

  constructor(options: LockServiceOptions) {
    this.store = options.store;
    const { locks } = options;
    this.catalog = isCatalog(locks) ? locks : new FixedCatalog(locks);
    this.clock = options.clock ?? (() => new Date());
    this.maxAttempts = options.maxAttempts ?? 20;
    this.sightings = options.sightings ?? new LineSightings();
  }

  /** Follows the store, so waiters' renewals are timed when they arrive, not when next decided on. */
  start(): void {
    this.unsubscribe ??= this.store.subscribe(({ name, next }) => {
      if (next) this.sightings.observe(next);
      else this.sightings.forget(name);
    });
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  get locks(): string[] {
    return [...this.catalog.names()];
  }

  has(name: string): boolean {
    return this.catalog.has(name);
  }

  /** The cached state of a lock: what `check` and the WebSocket snapshot serve. */
  state(name: string): LockState {
    this.assertKnown(name);
    const cached = this.store.cached(name);
    if (!cached) throw new LockNotProvisionedError(name);
    return cached.state;
  }

  /** The cached state of a lock, or undefined when it is unknown or not provisioned; never throws. */
  peek(name: string): LockState | undefined {
    return this.catalog.has(name) ? this.store.cached(name)?.state : undefined;
  }

  /** The waiters of `state` that still count, as this process judges them. */
  liveQueue(state: LockState): readonly Waiter[] {
    return liveQueue(state, this.sightings.liveness(state));
  }

  /** Milliseconds until `waiter` stops counting unless its replica renews it. */
  lapsesIn(state: LockState, waiter: Waiter): number {
    return this.sightings.lapsesIn(state, waiter);
  }

  /**
   * Runs `command` (or, for a command that depends on the caller's state at the time, the one
   * `command()` gives at each attempt: a retry after a lost compare-and-swap then uses what is
   * true now, not what was true when the first attempt began).
   */
  async execute(
    name: string,
    command: Command | (() => Command),
    options: ExecuteOptions = {},
  ): Promise<MutationResult> {
    const { rider } = options;
    if (!rider) return this.attempts(name, command, options);
    // Set only by a write that landed (a lost attempt's does not count), which ends the command.
    let carried: LockState | undefined;
    try {
      return await this.attempts(name, command, options, (state) => (carried = state));
    } finally {
      rider.done(carried);
    }
  }

  private async attempts(
    name: string,
    command: Command | (() => Command),
    options: ExecuteOptions,
    carrying?: (written: LockState | undefined) => void,
  ): Promise<MutationResult> {
    this.assertKnown(name);
    let current: Versioned | undefined = this.store.cached(name);
    let fresh = false;
    let conflicts = 0;
    if (!current) {
      current = await this.store.read(name, options);
      fresh = true;
    }
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (!current) throw new LockNotProvisionedError(name);
      const now = typeof command === 'function' ? command() : command;
      const decision = decide(
        current.state,
        now,
        this.clock(),
        this.sightings.liveness(current.state),
      );
      if (!decision.ok) {
        if (fresh || options.refuseOnCache)
          return { ok: false, refusal: decision.refusal, raced: conflicts > 0 };
        current = await this.store.read(name, options);
        fresh = true;
        continue;
      }
      if (decision.next === current.state) {
        // Nothing to write, but the answer claims the lock: confirm it on fresh state.
        if (fresh) return { ok: true, outcome: decision.outcome, state: current.state };
        current = await this.store.read(name, options);
        fresh = true;
        continue;
      }
      const [next, rides] = this.withRider(current.state, now, decision, options.rider);
      const written = await this.store.replace(next, current, options);
      if (written !== 'conflict') {
        this.sightings.observe(written.state);
        carrying?.(rides ? written.state : undefined);
        return { ok: true, outcome: decision.outcome, state: written.state };
      }
      conflicts++;
      // Many writers on one lock (a long waiting line): spread the upkeep of the line out a
      // little; grants and releases retry at once, they are what everyone waits for.
      if (conflicts > 1 && upkeep.has(now.kind))
        await sleep(Math.random() * Math.min(50, 2 ** conflicts));
      // The watch usually brought the write we lost to already: decide on that (a refusal is
      // still confirmed by a read); only when it did not, read.
      const moved = this.store.cached(name);
      if (moved && moved.version !== current.version) {
        current = moved;
        fresh = false;
      } else {
        current = await this.store.read(name, options);
        fresh = true;
      }
    }
    throw new LockContendedError(name, conflicts);
  }

  /**
   * The state to write for `decision`, with the rider's line changes applied first (a waiter
   * leaving is not handed the lock; one joining an empty line is handed it by a release) when
   * that leaves the command's outcome as it was; else the decision alone.
   */
  private withRider(
    state: LockState,
    command: Command,
    decision: Decision & { ok: true },
    rider: LineRider | undefined,
  ): [LockState, boolean] {
    const line = rider?.command();
    if (!line) return [decision.next, false];
    const now = this.clock();
    const stored = this.sightings.liveness(state);
    // The entries this write renews or puts back count, whatever was seen of them before.
    const joining = new Set(line.join.map((w) => w.id));
    const live: Liveness = (w) => joining.has(w.id) || stored(w);
    const lined = decide(state, line, now, stored);
    const first = lined.ok ? decide(lined.next, command, now, live) : undefined;
    if (!first?.ok || first.outcome !== decision.outcome) return [decision.next, false];
    const admitted = (next: LockState) => line.join.filter((w) => admits(next, w.id)).length;
    if (admitted(first.next) === line.join.length) return [first.next, true];
    // A full line left a join out: the place the command frees (the head handed the lock) may fit it.
    const after = decide(decision.next, line, now, live);
    return after.ok && admitted(after.next) > admitted(first.next)
      ? [after.next, true]
      : [first.next, true];
  }

  private assertKnown(name: string): void {
    if (!this.catalog.has(name)) throw new UnknownLockError(name);
  }
}

const isCatalog = (locks: readonly string[] | LockCatalog): locks is LockCatalog =>
  !Array.isArray(locks);
