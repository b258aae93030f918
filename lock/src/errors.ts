/** The lock store could not reach its backing API: callers answer 503 and never claim success. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
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
