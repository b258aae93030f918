import { describe, expect, it } from 'vitest';
import { defaultWaiterTtlSeconds, LineSightings, type LockState } from '@retrospective/lock';
import { annotations, fromLease, toLease } from './lease-codec.js';

const t0 = new Date('2026-11-23T10:00:00.000Z');
const handedOver: LockState = {
  name: 'retrospective',
  holder: 'bob',
  acquiredAt: t0,
  renewedAt: t0,
  token: 7,
  content: '',
  grantedTo: 'w1',
  unclaimedSeconds: 15,
  queue: [
    {
      id: 'w2',
      user: 'carol',
      since: t0,
      expires: t0,
      ttlSeconds: 30,
      beat: 3,
      holdTimeoutSeconds: 60,
      takesHandOver: true,
    },
  ],
};

describe('the Lease codec', () => {
  it('round-trips a hand-over and a line entry with everything it carries', () => {
    expect(fromLease(toLease(handedOver, '1')).state).toEqual(handedOver);
  });

  it("leaves out a line entry's TTL when it is the default, which every reader takes it to be", () => {
    const entry = { ...handedOver.queue![0]!, id: 'w3', ttlSeconds: defaultWaiterTtlSeconds };
    const lease = toLease({ ...handedOver, queue: [entry] }, '1');
    const written = JSON.parse(lease.metadata?.annotations?.[annotations.queue] ?? '[]') as Record<
      string,
      unknown
    >[];
    expect(written).toHaveLength(1);
    expect(written[0]).not.toHaveProperty('ttl');
    const { state } = fromLease(lease);
    const read = state.queue?.[0];
    expect(read?.ttlSeconds).toBeUndefined();
    // What the line's sightings count an entry without one for.
    expect(read && new LineSightings(() => 0).lapsesIn(state, read)).toBe(
      defaultWaiterTtlSeconds * 1000,
    );
    // Another TTL (WAIT_QUEUE_TTL_SECONDS) is written.
    expect(toLease(handedOver, '1').metadata?.annotations?.[annotations.queue]).toContain(
      '"ttl":30',
    );
  });

  it('reads the unclaimed mark only for the hold it was written for', () => {
    const lease = toLease(handedOver, '1');
    expect(lease.metadata?.annotations?.[annotations.unclaimed]).toBe('15/7');
    // A replica of an earlier version kept the annotation it does not know through a new grant.
    const later = { ...lease, spec: { ...lease.spec, leaseTransitions: 8 } };
    expect(fromLease(later).state.unclaimedSeconds).toBeUndefined();
    const garbage = {
      ...lease,
      metadata: { ...lease.metadata, annotations: { [annotations.unclaimed]: 'soon' } },
    };
    expect(fromLease(garbage).state.unclaimedSeconds).toBeUndefined();
  });

  it('clears managedFields in a replace, and leaves them to kube-apiserver in a create', () => {
    expect(toLease(handedOver, '1').metadata?.managedFields).toEqual([{}]);
    const tracked = { metadata: { managedFields: [{ manager: 'kubectl', operation: 'Update' }] } };
    expect(toLease(handedOver, '1', tracked).metadata?.managedFields).toEqual([{}]);
    expect(toLease(handedOver, undefined).metadata?.managedFields).toBeUndefined();
  });
});
