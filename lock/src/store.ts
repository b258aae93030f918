import type { LockState, Versioned } from './model.js';

/** One observed change of one lock; `prev` is undefined on first sighting, `next` on deletion. */
export interface StoreChange {
  readonly name: string;
  readonly prev: LockState | undefined;
  readonly next: LockState | undefined;
}

export type ChangeListener = (change: StoreChange) => void;

/**
 * Tells every listener of a change. A listener's fault is its own: it neither stops the others
 * nor escapes into the event loop (where it would end the process); it is reported as a warning.
 */
export function notifyListeners(listeners: Iterable<ChangeListener>, change: StoreChange): void {
  for (const listener of listeners) {
    try {
      listener(change);
    } catch (error) {
      process.emitWarning(`a listener of lock ${change.name} failed: ${String(error)}`);
    }
  }
}

export interface EnsureOptions {
  /**
   * The highest token a lock of this name may have handed out before (its Lease may have been
   * deleted since): a lock created now starts above it, so an old If-Match never matches a new hold.
   */
  readonly tokenFloor?: (name: string) => Promise<number>;
  /** The object a created lock belongs to (a `Lock`): deleting it deletes the lock. */
  readonly owner?: (name: string) => LockOwner | undefined;
}

/** A Kubernetes owner reference, as a store that supports owners writes it. */
export interface LockOwner {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
  readonly controller?: boolean;
  readonly blockOwnerDeletion?: boolean;
}

export interface StoreCallOptions {
  /** Abandons the call, e.g. when the controller lost leadership. */
  readonly signal?: AbortSignal | undefined;
}

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
  read(name: string, options?: StoreCallOptions): Promise<Versioned | undefined>;
  /** Writes `next` over `base` only if the stored version is still `base.version`. */
  replace(
    next: LockState,
    base: Versioned,
    options?: StoreCallOptions,
  ): Promise<Versioned | 'conflict'>;
  /** Creates the locks that do not exist yet, free and empty, their tokens above any floor given. */
  ensure(names: readonly string[], options?: EnsureOptions): Promise<void>;
  /** Makes `owner` the owner of the lock (stores that know owners: Kubernetes). */
  adopt?(name: string, owner: LockOwner, options?: StoreCallOptions): Promise<boolean>;
  /** The uid of the owner that controls the lock, if any. */
  ownerUid?(name: string): string | undefined;
  /** Deletes the lock if `ownerUid` still controls it (its owner was deleted). */
  remove?(name: string, ownerUid: string, options?: StoreCallOptions): Promise<void>;
  subscribe(listener: ChangeListener): () => void;
  /** True once the cache holds a full listing: from then on reads may lag, never regress. */
  ready(): boolean;
  /** True while the watch is connected (the cache is current, not only synced once). */
  watching(): boolean;
  close(): Promise<void>;
}
