import type { Liveness, LockState, Waiter } from './model.js';

/**
 * What an entry counts for when it does not say: entries written before `ttlSeconds` existed, and
 * entries with this very TTL, which leave it out (ADR 15). Stored Leases rely on it: never change.
 */
export const defaultWaiterTtlSeconds = 15;

const ttlMs = (waiter: Waiter) => (waiter.ttlSeconds ?? defaultWaiterTtlSeconds) * 1000;

/**
 * An entry's renewal, to compare with the last one seen: its renewal count, or `expires` for
 * entries written by replicas that keep no count (a rolling upgrade can mix the two: a change from
 * one kind to the other counts as a renewal).
 */
const renewalOf = (waiter: Waiter) =>
  waiter.beat !== undefined
    ? { kind: 'beat' as const, value: waiter.beat }
    : { kind: 'expires' as const, value: waiter.expires.getTime() };

/**
 * When this process last saw each waiter's entry renewed, by its own monotonic clock. An entry
 * counts until `ttlSeconds` after that sighting: client-go's rule for Leases, so replicas whose
 * clocks disagree (by more than the TTL, even) still agree on who waits. A renewal is a higher
 * renewal count (`beat`) from the entry's own replica, never a comparison with this clock.
 */
export class LineSightings {
  /** Per lock, per waiter id: the latest renewal seen and when it was first seen. */
  private readonly seen = new Map<
    string,
    Map<string, { renewal: ReturnType<typeof renewalOf>; at: number }>
  >();

  /** Per lock: the state observed last (observing it again changes nothing) and the last sweep. */
  private readonly last = new Map<string, { state: LockState; swept: number }>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Records the entries of `state`; an older state seen late changes nothing. */
  observe(state: LockState): void {
    const at = this.now();
    const last = this.last.get(state.name);
    // The same state again (every decision and every look reads the cached one): nothing new.
    if (last?.state === state) return;
    const lock =
      this.seen.get(state.name) ??
      new Map<string, { renewal: ReturnType<typeof renewalOf>; at: number }>();
    this.seen.set(state.name, lock);
    for (const waiter of state.queue ?? []) {
      const renewal = renewalOf(waiter);
      const known = lock.get(waiter.id)?.renewal;
      const renewed = !known || known.kind !== renewal.kind || renewal.value > known.value;
      if (renewed) lock.set(waiter.id, { renewal, at });
    }
    // Entries gone from the line are forgotten once they could no longer count anyway: swept a
    // few times per forgetting period, not at every state (a busy line sees thousands of ids).
    const forgetMs = 10 * defaultWaiterTtlSeconds * 1000;
    const sweep = !last || at - last.swept >= forgetMs / 10;
    this.last.set(state.name, { state, swept: sweep ? at : last.swept });
    if (!sweep) return;
    const present = new Set((state.queue ?? []).map((w) => w.id));
    for (const [id, known] of lock)
      if (!present.has(id) && known.at + forgetMs < at) lock.delete(id);
  }

  /** Whether each entry of `state` counts now; observes `state` first. */
  liveness(state: LockState): Liveness {
    this.observe(state);
    const now = this.now();
    const lock = this.seen.get(state.name);
    return (waiter) => (lock?.get(waiter.id)?.at ?? now) + ttlMs(waiter) > now;
  }

  /** Milliseconds until `waiter` of `state` stops counting (0 or less: it no longer counts). */
  lapsesIn(state: LockState, waiter: Waiter): number {
    this.observe(state);
    const now = this.now();
    return (this.seen.get(state.name)?.get(waiter.id)?.at ?? now) + ttlMs(waiter) - now;
  }

  /** Forgets a lock (it was deleted). */
  forget(lock: string): void {
    this.seen.delete(lock);
    this.last.delete(lock);
  }
}
