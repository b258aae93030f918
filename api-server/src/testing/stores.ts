import {
  MemoryStore,
  StoreUnavailableError,
  type ChangeListener,
  type LockState,
  type LockStore,
  type StoreChange,
  type Versioned,
} from '@retrospective/lock';

/**
 * A MemoryStore with faults a test can turn on: latency (so concurrent writers conflict, as they
 * do against a real API server), failing writes, a lock that goes missing (its Lease deleted), and
 * writes by "someone else" behind the service's back. It counts reads and writes.
 */
export class FaultyStore implements LockStore {
  readonly inner = new MemoryStore();
  latencyMs = 0;
  reads = 0;
  writes = 0;
  /** Writes waiting at a gate now. */
  held = 0;
  /** Writes this returns true for fail as if the API server were unreachable (nothing written). */
  failWrite: ((next: LockState) => boolean) | undefined;
  /** Writes this returns true for lose their compare-and-swap, as to another writer (nothing written). */
  conflictWrite: ((next: LockState) => boolean) | undefined;
  /** Writes this returns true for are made, but their answer is lost (a timeout after the write). */
  loseAnswer: ((next: LockState) => boolean) | undefined;
  private readonly gates: { match: (next: LockState) => boolean; open: Promise<void> }[] = [];
  private readonly hidden = new Set<string>();
  private readonly listeners = new Set<ChangeListener>();

  constructor() {
    this.inner.subscribe((change) => {
      if (this.hidden.has(change.name)) return;
      if (this.lagging) this.lagging.push(change);
      else for (const listener of this.listeners) listener(change);
    });
  }

  /** While set, changes wait here, as behind a watch that lags: see `lagWatch`. */
  private lagging: StoreChange[] | undefined;

  /**
   * Holds back change events (the cache still moves: only listeners wait) until the returned
   * function is called, which delivers them in order.
   */
  lagWatch(): () => void {
    this.lagging ??= [];
    return () => {
      const changes = this.lagging ?? [];
      this.lagging = undefined;
      for (const change of changes) for (const listener of this.listeners) listener(change);
    };
  }

  start = () => this.inner.start();
  ready = () => true;
  watching = () => true;
  close = () => this.inner.close();
  ensure = (names: readonly string[]) => this.inner.ensure(names);

  cached(name: string): Versioned | undefined {
    return this.hidden.has(name) ? undefined : this.inner.cached(name);
  }

  async read(name: string): Promise<Versioned | undefined> {
    this.reads++;
    await this.pause();
    return this.cached(name);
  }

  /** Holds back the writes `match` picks until the returned function is called. */
  gate(match: (next: LockState) => boolean): () => void {
    let open = () => undefined as unknown;
    this.gates.push({ match, open: new Promise<void>((resolve) => (open = resolve)) });
    return () => void open();
  }

  async replace(next: LockState, base: Versioned): Promise<Versioned | 'conflict'> {
    this.writes++;
    await this.pause();
    for (const gate of this.gates) {
      if (!gate.match(next)) continue;
      this.held++;
      await gate.open;
      this.held--;
    }
    if (this.hidden.has(next.name) || this.conflictWrite?.(next)) return 'conflict';
    if (this.failWrite?.(next)) throw new StoreUnavailableError('the API server is unreachable');
    const written = await this.inner.replace(next, base);
    if (written !== 'conflict' && this.loseAnswer?.(next))
      throw new StoreUnavailableError('the answer to a write was lost');
    return written;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The lock's Lease is deleted: it is missing until `restore`. */
  hide(name: string): void {
    const prev = this.inner.cached(name)?.state;
    this.hidden.add(name);
    for (const listener of this.listeners) listener({ name, prev, next: undefined });
  }

  /** The Lease is back, as `change` makes it from what it was (a new, empty Lease, say). */
  async restore(name: string, change: (state: LockState) => LockState = (s) => s): Promise<void> {
    this.hidden.delete(name);
    await this.rewrite(name, change);
  }

  /** Someone else writes the lock (another replica, kubectl). */
  async rewrite(name: string, change: (state: LockState) => LockState): Promise<void> {
    const current = this.inner.cached(name);
    if (!current) throw new Error(`no lock ${name}`);
    await this.inner.replace(change(current.state), current);
  }

  private async pause(): Promise<void> {
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
  }
}
