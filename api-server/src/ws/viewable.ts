import type { Authorizer, Freshness, Identity } from '../auth/authorizer.js';

/** At most this many locks in `?locks=`, and checked one by one for a client. */
export const maxSubscribedLocks = 100;

/**
 * The locks among `wanted` that `who` may view: one namespace-wide review first (a viewer of
 * every lock costs one), else one per lock, but only for at most maxSubscribedLocks of them
 * (`too_many` otherwise: such a caller names its locks).
 */
export async function viewable(
  auth: Authorizer,
  who: Identity | undefined,
  wanted: readonly string[],
  freshness?: Freshness,
): Promise<Set<string> | 'too_many'> {
  if (await auth.allowed(who, 'view', '', freshness)) return new Set(wanted);
  if (wanted.length > maxSubscribedLocks) return 'too_many';
  const allowed = await Promise.all(
    wanted.map((lock) => auth.allowed(who, 'view', lock, freshness)),
  );
  return new Set(wanted.filter((_, i) => allowed[i]));
}
