import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  isHeld,
  LockContendedError,
  UnknownLockError,
  type Command,
  type LockService,
  type LockState,
  type LockStore,
  type MutationResult,
  type StoreChange,
  type Waiter,
} from '@retrospective/lock';
import { KeyedSerial, SampledLog, safely } from '@retrospective/runtime';
import type { Metrics } from '../metrics.js';

import { LineWriter, shortLine } from './line-writer.js';
import { refused, refusedBy, type Refused } from './refused.js';

export interface WaitingRoomOptions {
  readonly service: LockService;
  readonly store: LockStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  /** How long a waiter's entry counts after its replica last renewed it (WAIT_QUEUE_TTL_SECONDS). */
  readonly ttlMs: number;
  /**
   * A lock's line limits: live waiters it may hold (WAIT_QUEUE_MAX or the `Lock`'s
   * spec.waiting.maxWaiters) and places per user (WAIT_QUEUE_MAX_PER_USER, maxPerUser).
   */
  readonly limits: (lock: string) => { readonly maxWaiters: number; readonly maxPerUser: number };
}

/** One caller of this replica waiting in a lock's line. */
interface Pending {
  readonly id: string;
  readonly lock: string;
  readonly user: string;
  readonly since: Date;
  readonly holdTimeoutSeconds: number | undefined;
  readonly started: number;
  /** joining: its entry is being written; taking: this replica is granting it the lock. */
  phase: 'joining' | 'waiting' | 'taking' | 'done';
  /** Renewals of its entry so far: every replica takes a higher count for a renewal. */
  beat: number;
  settle(result: MutationResult | Refused): void;
}

/**
 * How long a replica remembers the waiters that left, to hand back a grant that raced their
 * leaving (their entry lapses long before, even when the leave could not be written).
 */
const rememberLeftMs = 2 * 60 * 1000;
/** At most this many of those: the oldest are forgotten first. */
const rememberLeftMax = 10_000;
/** Hand-backs are retried until they succeed or the hold is no longer theirs; at most this apart. */
const maxHandBackDelayMs = 5000;

/**
 * Blocking acquire with first come, first served hand-over across replicas. The line lives in
 * the lock itself (its Lease), so every replica sees it; a free lock may only be taken by the
 * waiter at the head, and only the replica holding that waiter's request takes it, the moment its
 * watch shows the release. Each replica renews its waiters' entries while they wait (every
 * TTL / 3, one write per lock) and puts back any entry that something dropped (an outage longer
 * than the TTL, the Lease made again); a dead replica's entries stop counting a TTL after another
 * replica last saw them renewed. A caller that leaves never ends up holding the lock: a grant that
 * races its leaving is handed back, retried until it is.
 */
export class WaitingRoom {
  private readonly pending = new Map<string, Pending>();
  private readonly writers = new Map<string, LineWriter>();
  /** This replica's writes per lock, one at a time: a grant never crosses a line write. */
  private readonly serial = new KeyedSerial();
  /** Locks with a look in flight, and those to look at again once it is done. */
  private readonly looking = new Set<string>();
  private readonly again = new Set<string>();
  /** Per lock: a look when someone else's head entry would stop counting. */
  private readonly headTimers = new Map<string, NodeJS.Timeout>();
  /** Waiters of this replica that left, by id: a grant to one of them is handed back. */
  private readonly left = new Map<
    string,
    { lock: string; user: string; at: number; token?: number | undefined }
  >();
  private readonly handBacks = new Set<Promise<void>>();
  /** Hand-overs to confirm later, by their timer: confirmed at once when the room stops. */
  private readonly confirms = new Map<NodeJS.Timeout, () => Promise<void>>();
  /** Failing line writes (an outage) are logged once a minute, with a count. */
  private readonly failures: SampledLog;
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeCatalog: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly options: WaitingRoomOptions) {
    this.failures = new SampledLog(options.logger);
  }

  /** Callers of this replica waiting now. */
  get size(): number {
    return this.pending.size;
  }

  /** Follows the locks and renews this replica's waiters; call once, before serving. */
  start(): void {
    const { store, logger, ttlMs } = this.options;
    this.unsubscribe = store.subscribe(safely(logger, 'waiting room', (c) => this.onChange(c)));
    this.unsubscribeCatalog = this.options.service.catalog.subscribe(
      safely(logger, 'waiting room', ({ name, policy }) => policy ?? this.deleted(name)),
    );
    this.heartbeat = setInterval(
      safely(logger, 'waiting room heartbeat', () => this.beat()),
      Math.max(500, ttlMs / 3),
    );
    this.heartbeat.unref();
  }

  /**
   * `avail`, waiting in line up to `seconds` (0: not at all) when someone else holds the lock (or
   * others wait before us). Resolves with the grant, or with a refusal when the time runs out,
   * `signal` aborts (the client went away) or the line has no place. A grant that lands after its
   * caller went away is handed back.
   */
  async avail(
    lock: string,
    user: string,
    holdTimeoutSeconds: number | undefined,
    seconds: number,
    signal: AbortSignal,
  ): Promise<MutationResult | Refused> {
    // A stopping replica takes no one in line; a plain avail is served while it drains.
    if (this.stopped && seconds > 0) return shuttingDown();
    const { service, clock, ttlMs } = this.options;
    // The request's own id: the hold is recorded as granted to it, and its place in line has it.
    const id = waiterId();
    let first: MutationResult;
    try {
      // A caller that will wait joins the line when refused: no need to confirm the refusal.
      first = await service.execute(
        lock,
        { kind: 'avail', user, holdTimeoutSeconds, claim: id },
        // (Unless the cache says this user holds it: then the answer is a renewal, confirmed.)
        { refuseOnCache: seconds > 0 && service.peek(lock)?.holder !== user },
      );
    } catch (error) {
      const now = service.peek(lock);
      if (seconds > 0 && error instanceof LockContendedError && now && now.holder !== user) {
        // Every attempt to take the lock lost to other writers (nothing was written): one who
        // will wait joins the line, as when refused. (A holder renewing is answered 503.)
        first = waitAnswer(now);
      } else {
        // The grant may have landed though its answer was lost: if the watch shows it, hand it back.
        this.remember(id, lock, user);
        this.kick(lock);
        throw error;
      }
    }
    if (first.ok && first.outcome === 'granted' && signal.aborted) {
      // The caller hung up while its grant was being written: nobody is there to hold it.
      this.handBack(lock, user, first.state.token, id);
      return first;
    }
    if (first.ok || seconds <= 0 || !['locked', 'queued'].includes(first.refusal.code))
      return first;
    if (signal.aborted) return first;
    // Checked again: the room may have stopped during the first attempt.
    if (this.isStopped()) return shuttingDown();
    const now = clock();
    const waiter: Waiter = {
      id,
      user,
      since: now,
      expires: new Date(now.getTime() + ttlMs),
      ttlSeconds: ttlMs / 1000,
      beat: 0,
      holdTimeoutSeconds,
      takesHandOver: true,
    };
    return new Promise((resolve) => {
      const entry: Pending = {
        id: waiter.id,
        lock,
        user,
        since: now,
        holdTimeoutSeconds,
        started: performance.now(),
        phase: 'joining',
        beat: 0,
        settle: (result) => {
          if (entry.phase === 'done') return;
          entry.phase = 'done';
          clearTimeout(timer);
          signal.removeEventListener('abort', abandon);
          this.pending.delete(entry.id);
          resolve(result);
        },
      };
      const abandon = safely(this.options.logger, 'leaving the line', () =>
        this.giveUp(entry, 'abandoned'),
      );
      const timer = setTimeout(
        safely(this.options.logger, 'wait timeout', () => this.giveUp(entry, 'timeout')),
        seconds * 1000,
      );
      // Listening before the first await: a client that leaves now is never put in line.
      signal.addEventListener('abort', abandon, { once: true });
      this.pending.set(entry.id, entry);
      // Those in line now stay ahead of it, whenever its place is written and whatever the clocks.
      const inLine = service.peek(lock);
      const ahead = new Set(inLine ? service.liveQueue(inLine).map((w) => w.id) : []);
      this.writer(lock)
        .join(waiter, ahead)
        .then(
          (line) => {
            if (entry.phase !== 'joining') return;
            if (!line) return entry.settle(this.noPlace(lock));
            entry.phase = 'waiting';
            this.kick(lock);
          },
          (error: unknown) => {
            // The join may have landed though its answer was lost: take the entry out again, and
            // hand back a hand-over that reaches it before that.
            this.writer(lock).leave([entry.id]);
            entry.settle(refusedBy(error));
            this.remember(entry.id, lock, user);
          },
        );
    });
  }

  /**
   * Runs a holder's command (change, release, force); this replica's line changes waiting to be
   * written ride in its write. A release then hands the lock on and updates the line in one write,
   * rather than racing a line write of its own replica.
   */
  async execute(lock: string, command: Command): Promise<MutationResult> {
    const { service } = this.options;
    // Only a command the cache says will write takes the line's changes along (a refused one
    // would only hold them back).
    const state = service.peek(lock);
    const writes =
      state !== undefined &&
      isHeld(state) &&
      (command.kind === 'force' ||
        ((command.kind === 'release' || command.kind === 'change') &&
          state.holder === command.user));
    const rider = writes ? this.writers.get(lock)?.carry() : undefined;
    const result = await service.execute(lock, command, { rider });
    // Handed to a waiter of this replica: answered now, not once the watch brings the write back.
    const { state: after } = result.ok ? result : {};
    if (after?.grantedTo && isHeld(after) && this.pending.has(after.grantedTo))
      this.takeUp(lock, after);
    return result;
  }

  /**
   * Stops the room: later waits are refused, every waiter is answered Wait and taken out of the
   * lines, and grants that raced a leaving caller get one more try to be handed back.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    for (const timer of this.headTimers.values()) clearTimeout(timer);
    for (const entry of [...this.pending.values()]) this.giveUp(entry, 'abandoned');
    const confirms = [...this.confirms];
    this.confirms.clear();
    for (const [timer] of confirms) clearTimeout(timer);
    await Promise.all(confirms.map(([, confirm]) => confirm().catch(() => undefined)));
    // Still following the locks while the leaves are written: a release that hands the lock to
    // one of these waiters meanwhile is seen, and handed back.
    await Promise.all([...this.writers.values()].map((w) => w.idle()));
    while (this.handBacks.size) await Promise.all(this.handBacks);
    this.unsubscribe?.();
    this.unsubscribeCatalog?.();
  }

  private isStopped(): boolean {
    return this.stopped;
  }

  private writer(lock: string): LineWriter {
    let writer = this.writers.get(lock);
    if (!writer) {
      const { service, limits } = this.options;
      writer = new LineWriter({
        lock,
        service,
        limits: () => limits(lock),
        serial: (fn) => this.serial.run(lock, fn),
        renewals: () => this.renewals(lock),
        onLeftOut: (ids, line) => this.leftOut(ids, line),
        onError: (error) =>
          this.failures.warn('could not write the waiting line', { err: error, lock }),
      });
      this.writers.set(lock, writer);
    }
    return writer;
  }

  /** Fresh entries for this replica's waiters of `lock` that are in line (not joining or taking). */
  private renewals(lock: string): Waiter[] {
    const now = this.options.clock().getTime();
    const ttlMs = this.options.ttlMs;
    // A waiter the lock was granted to (its answer lost) is served, not put back in line.
    const served = this.options.service.peek(lock)?.grantedTo;
    return [...this.pending.values()]
      .filter((p) => p.lock === lock && p.phase === 'waiting' && p.id !== served)
      .map((p) => ({
        id: p.id,
        user: p.user,
        since: p.since,
        expires: new Date(now + ttlMs),
        ttlSeconds: ttlMs / 1000,
        beat: ++p.beat,
        holdTimeoutSeconds: p.holdTimeoutSeconds,
        takesHandOver: true,
      }));
  }

  /**
   * Waiters whose entry was dropped and could not be put back (the line filled up meanwhile, or
   * their user took a place elsewhere): answered now, rather than left waiting for nothing.
   */
  private leftOut(ids: readonly string[], line: LockState): void {
    for (const id of ids) {
      const entry = this.pending.get(id);
      if (!entry || entry.phase !== 'waiting') continue;
      // Out of line because the lock was handed to it (or the answer of its take got lost).
      if (isHeld(line) && line.grantedTo === id && line.holder === entry.user)
        this.takeUp(entry.lock, line);
      else {
        this.observeWait(entry, 'timeout');
        entry.settle(this.noPlace(entry.lock));
      }
    }
  }

  /**
   * Remembers a request that is over: one that left (a grant to it may be in flight or land
   * unheard of), or one answered with the hold of `token` (any later grant to it is a mistake to
   * undo). Either way a hold granted to it that is not that one is handed back.
   */
  private remember(id: string, lock: string, user: string, token?: number): void {
    const oldest = this.left.keys().next();
    if (this.left.size >= rememberLeftMax && !oldest.done) this.left.delete(oldest.value);
    this.left.set(id, { lock, user, at: performance.now(), token });
  }

  private giveUp(entry: Pending, outcome: 'timeout' | 'abandoned'): void {
    if (entry.phase === 'done') return;
    this.observeWait(entry, outcome);
    entry.settle(this.waitRefusal(entry.lock));
    this.writer(entry.lock).leave([entry.id]);
    // Until its entry is out of line, a release anywhere may hand it the lock; a grant of ours
    // may also have landed without us hearing back. Either way it is handed on.
    this.remember(entry.id, entry.lock, entry.user);
    this.kick(entry.lock);
  }

  /**
   * The lock was deleted (its `Lock` object): everyone waiting for it is answered 404 at once;
   * their entries go with the Lease.
   */
  private deleted(lock: string): void {
    for (const entry of [...this.pending.values()])
      if (entry.lock === lock)
        entry.settle(
          refused(404, 'unknown_lock', `Lock "${lock}" was deleted while you waited for it.`),
        );
    this.writers.delete(lock);
    clearTimeout(this.headTimers.get(lock));
    this.headTimers.delete(lock);
    for (const [id, gone] of this.left) if (gone.lock === lock) this.left.delete(id);
  }

  /** The answer to a waiter whose time ran out: Wait, as for a plain avail. Never throws. */
  private waitRefusal(lock: string): MutationResult | Refused {
    const state = this.options.service.peek(lock);
    if (!state)
      return refused(503, 'not_provisioned', `Lock "${lock}" does not exist right now.`, {
        'Retry-After': '5',
      });
    return waitAnswer(state);
  }

  /** Why a caller got no place in line: the line is full, or they have one already. */
  private noPlace(lock: string): MutationResult | Refused {
    const { service, limits } = this.options;
    const state = service.peek(lock);
    if (!state) return this.waitRefusal(lock);
    const full = service.liveQueue(state).length >= limits(lock).maxWaiters;
    return {
      ok: false,
      refusal: { code: full ? 'queue_full' : 'waiting_limit', state },
      raced: false,
    };
  }

  private observeWait(entry: Pending, outcome: 'granted' | 'timeout' | 'abandoned'): void {
    this.options.metrics.waitDuration.observe(
      { lock: entry.lock, outcome },
      (performance.now() - entry.started) / 1000,
    );
  }

  private onChange(change: StoreChange): void {
    const { service, metrics } = this.options;
    const { name, next } = change;
    if (!service.has(name)) return;
    if (!next) {
      metrics.queueLength.set({ lock: name }, 0);
      return;
    }
    const waiting = service.liveQueue(next).length;
    metrics.queueLength.set({ lock: name }, waiting);
    // Free: no release will come to carry this replica's line changes; write them now. Nearly
    // dry: the line may run out before one comes; a write waiting for one goes now.
    if (!isHeld(next)) this.writers.get(name)?.hurry();
    else if (waiting <= shortLine) this.writers.get(name)?.nudge();
    // A release handed the lock to a waiter of ours: answer it now, no write needed.
    if (isHeld(next) && next.grantedTo) this.takeUp(name, next);
    // Our own writes may be ahead of the watch: judge from the newest state we know.
    const line = service.liveQueue(service.peek(name) ?? next);
    const ours = [...this.pending.values()].filter((p) => p.lock === name);
    // Something dropped an entry of ours (a lapse, the Lease made again): put it back now.
    if (ours.some((p) => p.phase === 'waiting' && !line.some((w) => w.id === p.id)))
      this.writer(name).renewAll();
    if (ours.length || (next.grantedTo && this.left.has(next.grantedTo))) this.kick(name);
  }

  /** Renews this replica's waiters and looks at their locks again. */
  private beat(): void {
    const now = performance.now();
    for (const [id, gone] of this.left) if (now - gone.at > rememberLeftMs) this.left.delete(id);
    const locks = new Set([...this.pending.values()].map((p) => p.lock));
    for (const lock of locks) {
      this.writer(lock).renewAll();
      this.kick(lock);
    }
  }

  /** Looks at a lock now, or right after the look in flight. */
  private kick(lock: string): void {
    if (this.looking.has(lock)) {
      this.again.add(lock);
      return;
    }
    this.looking.add(lock);
    void this.serial
      .run(lock, () => this.look(lock))
      .catch((error: unknown) =>
        this.options.logger.warn({ err: error, lock }, 'could not hand the lock to a waiter'),
      )
      .finally(() => {
        this.looking.delete(lock);
        if (this.again.delete(lock)) this.kick(lock);
      });
  }

  /** Takes a free lock for our waiter at the head of its line; hands back grants nobody waits for. */
  private async look(lock: string): Promise<void> {
    const { service } = this.options;
    clearTimeout(this.headTimers.get(lock));
    const state = service.peek(lock);
    if (!state) return;
    if (isHeld(state)) return this.lookAtHold(lock, state);
    const head = service.liveQueue(state)[0];
    if (!head) return;
    const entry = this.pending.get(head.id);
    if (!entry) {
      // Someone else's turn; if their replica is gone, their entry stops counting in a while.
      const wait = Math.max(0, service.lapsesIn(state, head)) + 50;
      const timer = setTimeout(
        safely(this.options.logger, 'head timer', () => this.kick(lock)),
        wait,
      );
      timer.unref();
      this.headTimers.set(lock, timer);
      return;
    }
    if (entry.phase !== 'waiting') return;
    entry.phase = 'taking';
    let result: MutationResult;
    try {
      result = await service.execute(lock, {
        kind: 'avail',
        user: entry.user,
        holdTimeoutSeconds: entry.holdTimeoutSeconds,
        waiter: entry.id,
        claim: entry.id,
      });
    } finally {
      // An unknown outcome (an error): the watch shows whether the grant landed (grantedTo is ours).
      if (phaseOf(entry) === 'taking') entry.phase = 'waiting';
    }
    if (!result.ok) return;
    // Read again: the caller may have left (phase 'done') while the grant was in flight.
    if (phaseOf(entry) === 'done') {
      // Answered meanwhile: with this very hold (the watch brought it before the write's answer),
      // or because the caller left, in which case they never get it. (A renewal means their user
      // held it already, through another request: that hold is not this one's to hand back.)
      if (this.left.get(entry.id)?.token === result.state.token) return;
      this.left.delete(entry.id);
      if (result.outcome === 'granted')
        this.handBack(lock, entry.user, result.state.token, entry.id);
      return;
    }
    this.granted(entry, state, result);
  }

  /** A held lock: answer our waiter it was granted to, or hand it back if they left. */
  private lookAtHold(lock: string, state: LockState & { holder: string }): void {
    this.takeUp(lock, state);
  }

  /**
   * A hold recorded as granted to a request of this replica: its waiter is answered (a hand-over
   * by a release, or our own take whose answer was lost), and the hand-over confirmed a little
   * later unless the holder writes first; if the waiter left, the hold is handed back.
   */
  private takeUp(lock: string, state: LockState & { holder: string }): void {
    const id = state.grantedTo;
    if (!id) return;
    const entry = this.pending.get(id);
    if (entry && entry.phase !== 'done' && entry.user === state.holder) {
      this.granted(entry, state, { ok: true, outcome: 'granted', state });
      if (state.unclaimedSeconds !== undefined) this.confirmLater(lock, id, state);
      return;
    }
    const gone = this.left.get(id);
    // The hold its caller was answered with: theirs.
    if (!gone || gone.user !== state.holder || gone.token === state.token) return;
    this.left.delete(id);
    this.handBack(lock, gone.user, state.token, id);
  }

  /**
   * Tells the controller a hand-over was taken up, a third of its time in, unless a write of the
   * holder's did already (most holders release or change well before): so a hand-over costs one
   * write, the release that made it, and a second only when the new holder idles.
   */
  private confirmLater(lock: string, waiter: string, state: LockState): void {
    const { service, logger } = this.options;
    const token = state.token;
    const ttlMs = (state.unclaimedSeconds ?? 15) * 1000;
    const started = performance.now();
    let timer: NodeJS.Timeout;
    const confirm = async (): Promise<void> => {
      this.confirms.delete(timer);
      const now = service.peek(lock);
      if (now?.grantedTo !== waiter || now.token !== token || now.unclaimedSeconds === undefined)
        return;
      try {
        await this.serial.run(lock, () =>
          service.execute(lock, { kind: 'confirm', waiter, token }),
        );
      } catch (error) {
        // Tried again (a second apart) for as long as the hand-over could still be taken up.
        if (this.stopped || performance.now() - started > 2 * ttlMs) throw error;
        schedule(1000);
      }
    };
    const schedule = (ms: number) => {
      timer = setTimeout(safely(logger, 'confirming a hand-over', confirm), ms);
      timer.unref();
      this.confirms.set(timer, confirm);
    };
    schedule(ttlMs / 3);
  }

  private granted(entry: Pending, before: LockState, result: MutationResult & { ok: true }): void {
    const { metrics, clock } = this.options;
    if (before.releasedAt)
      metrics.handoverGap.observe(
        { lock: entry.lock },
        Math.max(0, (clock().getTime() - before.releasedAt.getTime()) / 1000),
      );
    this.observeWait(entry, 'granted');
    entry.settle(result);
    this.remember(entry.id, entry.lock, entry.user, result.state.token);
  }

  /**
   * Releases a hold granted to a request whose caller left, pinned to its token and to the
   * request (`claim`): if another request of the same user claimed the hold meanwhile (it asked
   * again and was told it holds it), the hold is theirs and stays. Retried (backing off) until it
   * succeeds or the hold is no longer that request's, so nobody gone keeps the lock.
   */
  private handBack(lock: string, user: string, token: number, claim: string): void {
    const { service, logger } = this.options;
    const attempt = async (delay: number): Promise<void> => {
      try {
        // Released, or refused because the hold is no longer that caller's: either way, done.
        const result = await this.serial.run(lock, () =>
          service.execute(lock, { kind: 'release', user, ifMatch: token, claim }),
        );
        if (result.ok) logger.info({ lock, user, token }, 'handed back a grant its caller left');
        return;
      } catch (error) {
        if (error instanceof UnknownLockError) return; // the lock was deleted, and its holds with it
        logger.warn({ err: error, lock, user, token }, 'could not hand back a grant; retrying');
      }
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, delay).unref());
      return attempt(Math.min(delay * 2, maxHandBackDelayMs));
    };
    const running = attempt(100);
    this.handBacks.add(running);
    void running.finally(() => this.handBacks.delete(running));
  }
}

/**
 * A request's id: 72 random bits, base64url (12 characters). It is written in the line and in the
 * grant, so its length is paid on every hand-over; a UUID took 36.
 */
const waiterId = () => randomBytes(9).toString('base64url');

/** Wait, as a plain avail is answered: someone holds the lock, or others are ahead in line. */
const waitAnswer = (state: LockState): MutationResult => ({
  ok: false,
  refusal: { code: isHeld(state) ? 'locked' : 'queued', state },
  raced: false,
});

const shuttingDown = () =>
  refused(503, 'shutting_down', 'This replica is shutting down; try again.', {
    'Retry-After': '1',
  });

/** An entry's phase, read afresh (it changes while a write is in flight). */
const phaseOf = (entry: Pending): Pending['phase'] => entry.phase;
