import { describe, expect, it } from 'vitest';
import type { LockState } from '@retrospective/lock';
import type { LockObject } from '@retrospective/runtime';
import { desiredStatus, sameStatus } from './lock-status.js';

const t0 = new Date('2026-12-01T10:00:00Z');
const object = (status?: LockObject['status']): LockObject => ({
  metadata: { name: 'team-a', generation: 2 },
  spec: {
    holdTimeoutSeconds: 0,
    maxHoldSeconds: 0,
    heldTooLongSeconds: 60,
    maxContentBytes: 1024,
    waiting: { maxSeconds: 300, maxWaiters: 100, maxPerUser: 1 },
  },
  ...(status ? { status } : {}),
});
const held: LockState = {
  name: 'team-a',
  holder: 'ana',
  acquiredAt: t0,
  renewedAt: t0,
  token: 7,
  content: '',
  releasedBy: 'bob',
  releasedAt: new Date(t0.getTime() - 1000),
  releaseReason: 'released',
};

/** The status of `state` at `now`, for a Lock whose threshold is 60 s. */
const statusOf = (state: LockState | undefined, now: Date, shown = object(), waiting = 0) =>
  desiredStatus({ object: shown, state, waiting, heldTooLongSeconds: 60, now });

describe('the status of a Lock', () => {
  it('says who holds it, since when, with which token, and that its Lease is in step', () => {
    const status = statusOf(held, t0, object(), 2);
    expect(status).toMatchObject({
      observedGeneration: 2,
      holder: 'ana',
      since: t0.toISOString(),
      token: 7,
      waiting: 2,
      lastRelease: { user: 'bob', reason: 'released' },
    });
    expect(status.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'LeaseInStep'],
      ['HeldTooLong', 'False', 'WithinThreshold'],
    ]);
  });

  it('stays the same, transition times included, while only the Lease renews (no write)', () => {
    const first = statusOf(held, t0);
    const later = new Date(t0.getTime() + 30_000);
    const renewed = { ...held, renewedAt: later };
    const second = statusOf(renewed, later, object(first), 0);
    expect(sameStatus(first, second)).toBe(true);
  });

  it('turns HeldTooLong on past the threshold, moving only that transition time', () => {
    const first = statusOf(held, t0);
    const later = new Date(t0.getTime() + 61_000);
    const second = statusOf(held, later, object(first), 0);
    const tooLong = second.conditions?.find((c) => c.type === 'HeldTooLong');
    expect(tooLong).toMatchObject({ status: 'True', lastTransitionTime: later.toISOString() });
    expect(second.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime).toBe(
      t0.toISOString(),
    );
    expect(sameStatus(first, second)).toBe(false);
  });

  it('is not Ready while the Lease is missing, and names no holder then', () => {
    const status = statusOf(undefined, t0);
    expect(status.holder).toBeUndefined();
    expect(status.conditions?.[0]).toMatchObject({
      type: 'Ready',
      status: 'False',
      reason: 'LeaseMissing',
    });
  });
});
