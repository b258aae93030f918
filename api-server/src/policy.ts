import type { LockPolicy } from '@retrospective/lock';
import type { Config } from './config.js';

/** The policy every lock of the LOCKS list has: the environment's. */
export function envPolicy(config: Config): LockPolicy {
  return {
    holdTimeoutSeconds: config.HOLD_TIMEOUT_SECONDS,
    maxHoldSeconds: 0,
    heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
    maxContentBytes: config.MAX_CONTENT_BYTES,
    waiting: {
      maxSeconds: config.WAIT_MAX_SECONDS,
      maxWaiters: config.WAIT_QUEUE_MAX,
      maxPerUser: config.WAIT_QUEUE_MAX_PER_USER,
    },
  };
}

/** The largest content a `Lock` may allow (its CRD's bound): what a request body may carry. */
export const declaredContentBytesAtMost = 200 * 1024;
