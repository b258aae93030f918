import type { LockState, Versioned } from './model.js';

/** One observed change of one lock; `prev` is undefined on first sighting, `next` on deletion. */
export interface StoreChange {
  readonly name: string;
  readonly prev: LockState | undefined;
  readonly next: LockState | undefined;
}

export type ChangeListener = (change: StoreChange) => void;

/**
 * Where lock states live. Stores only read, write with compare-and-swap and watch; every
 * decision is made by `decide` in LockService, so both stores follow the same rules.
 */
export interface LockStore {
  /** Starts the watch; resolves once the cache holds a full listing. */
  start(): Promise<void>;
  /** The last state the watch delivered. It may lag behind the source of truth. */
  cached(name: string): Versioned | undefined;
  /** Reads the source of truth, bypassing the cache. */
  read(name: string): Promise<Versioned | undefined>;
  /** Writes `next` only if the stored version is still `version`. */
  replace(next: LockState, version: string): Promise<Versioned | 'conflict'>;
  /** Creates the locks that do not exist yet, free and empty. */
  ensure(names: readonly string[]): Promise<void>;
  subscribe(listener: ChangeListener): () => void;
  /** True while the cache is synced and the watch is connected. */
  ready(): boolean;
  close(): Promise<void>;
}
