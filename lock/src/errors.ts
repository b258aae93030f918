/** The lock store could not reach its backing API: callers answer 503 and never claim success. */
export class StoreUnavailableError extends Error {
  override readonly name: string = 'StoreUnavailableError';
}

/**
 * Every write of a command lost its compare-and-swap to other writers of the same lock: the
 * store answered each time, nothing was written, and the command may simply be tried again.
 */
export class LockContendedError extends StoreUnavailableError {
  override readonly name: string = 'LockContendedError';
  constructor(
    readonly lock: string,
    readonly conflicts: number,
  ) {
    super(`Gave up on lock "${lock}" after ${conflicts} conflicting writes`);
  }
}

/** The lock name is not one of the configured locks. */
export class UnknownLockError extends Error {
  override readonly name = 'UnknownLockError';
  constructor(readonly lock: string) {
    super(`There is no lock named "${lock}"`);
  }
}

/** The lock is configured but its Lease does not exist yet (the controller creates it). */
export class LockNotProvisionedError extends Error {
  override readonly name = 'LockNotProvisionedError';
  constructor(readonly lock: string) {
    super(`Lock "${lock}" is not provisioned yet; the controller creates it`);
  }
}

/**
 * The store refused the lock's object as invalid for a reason other than its size (something
 * else changed it into a form the API server no longer accepts): nothing was written.
 */
export class LockInvalidError extends Error {
  override readonly name = 'LockInvalidError';
  constructor(
    readonly lock: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`Lock "${lock}" cannot be stored: ${detail}`, options);
  }
}

/**
 * The store refused to keep the lock as it would be (a Lease's annotations may hold 256 KiB in
 * all): nothing was written. Configuration keeps the service's own data below the limit, so this
 * means something else grew the object (another tool's annotations).
 */
export class LockTooLargeError extends Error {
  override readonly name = 'LockTooLargeError';
  constructor(
    readonly lock: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`Lock "${lock}" cannot be stored: ${detail}`, options);
  }
}
