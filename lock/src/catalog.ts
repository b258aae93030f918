/** What a lock's owner decides about it: the `spec` of a `Lock`, or the environment's defaults. */
export interface LockPolicy {
  /** Idle seconds after which the controller expires a hold; 0 means never. */
  readonly holdTimeoutSeconds: number;
  /** The longest hold timeout or time-to-live a client may ask for; 0 means any. */
  readonly maxHoldSeconds: number;
  /** A hold longer than this is held too long (alerts, Events, the view). */
  readonly heldTooLongSeconds: number;
  readonly maxContentBytes: number;
  readonly waiting: {
    readonly maxSeconds: number;
    readonly maxWaiters: number;
    readonly maxPerUser: number;
  };
}

/** A lock appeared or changed its policy (`policy` set), or went away (`policy` undefined). */
export interface CatalogChange {
  readonly name: string;
  readonly policy: LockPolicy | undefined;
}

export type CatalogListener = (change: CatalogChange) => void;

/**
 * The locks a process serves and the policy of each. A fixed list in embedded mode and with
 * `LOCKS`; the watched `Lock` objects of the namespace otherwise, so locks come and go while the
 * process runs.
 */
export interface LockCatalog {
  names(): readonly string[];
  has(name: string): boolean;
  policy(name: string): LockPolicy | undefined;
  /** Tells `listener` of every later change; returns the way to stop. */
  subscribe(listener: CatalogListener): () => void;
}

/** A list of locks known from the start, all with one policy. */
export class FixedCatalog implements LockCatalog {
  private readonly known: readonly string[];
  private readonly set: ReadonlySet<string>;

  constructor(
    locks: readonly string[],
    private readonly shared: LockPolicy = defaultPolicy,
  ) {
    this.known = [...new Set(locks)];
    this.set = new Set(this.known);
  }

  names(): readonly string[] {
    return this.known;
  }

  has(name: string): boolean {
    return this.set.has(name);
  }

  policy(name: string): LockPolicy | undefined {
    return this.set.has(name) ? this.shared : undefined;
  }

  subscribe(): () => void {
    return () => undefined;
  }
}

/** The policy of a lock nobody said anything about (the `Lock` CRD's defaults). */
export const defaultPolicy: LockPolicy = {
  holdTimeoutSeconds: 0,
  maxHoldSeconds: 0,
  heldTooLongSeconds: 900,
  maxContentBytes: 32 * 1024,
  waiting: { maxSeconds: 300, maxWaiters: 100, maxPerUser: 1 },
};
