import { emptyLock, type LockState, type Versioned } from './model.js';
import { notifyListeners, type ChangeListener, type LockStore } from './store.js';

/** An in-process store for `make run` and unit tests. Changes reach listeners asynchronously, like a watch. */
export class MemoryStore implements LockStore {
  private readonly locks = new Map<string, Versioned>();
  private readonly listeners = new Set<ChangeListener>();
  private revision = 0;

  async start(): Promise<void> {}

  cached(name: string): Versioned | undefined {
    return this.locks.get(name);
  }

  async read(name: string): Promise<Versioned | undefined> {
    return this.locks.get(name);
  }

  async replace(next: LockState, base: Versioned): Promise<Versioned | 'conflict'> {
    const current = this.locks.get(next.name);
    if (!current || current.version !== base.version) return 'conflict';
    return this.put(next, current.state);
  }

  async ensure(names: readonly string[]): Promise<void> {
    for (const name of names) {
      if (!this.locks.has(name)) this.put(emptyLock(name), undefined);
    }
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  ready(): boolean {
    return true;
  }

  watching(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  private put(state: LockState, prev: LockState | undefined): Versioned {
    const written = { state, version: String(++this.revision) };
    this.locks.set(state.name, written);
    const change = { name: state.name, prev, next: state };
    queueMicrotask(() => notifyListeners(this.listeners, change));
    return written;
  }
}
