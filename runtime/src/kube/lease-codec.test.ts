import { describe, expect, it } from 'vitest';
import {
  defaultWaiterTtlSeconds,
  LineSightings,
  type LockState,
  type Waiter,
} from '@retrospective/lock';
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
    const written = JSON.parse(
      lease.metadata?.annotations?.[annotations.line] ?? '[]',
    ) as unknown[][];
    expect(written).toEqual([['w3', 'carol', t0.getTime(), 0, 3, 60]]);
    const { state } = fromLease(lease);
    const read = state.queue?.[0];
    expect(read?.ttlSeconds).toBeUndefined();
    // What the line's sightings count an entry without one for.
    expect(read && new LineSightings(() => 0).lapsesIn(state, read)).toBe(
      defaultWaiterTtlSeconds * 1000,
    );
    // Another TTL (WAIT_QUEUE_TTL_SECONDS) is written.
    expect(
      JSON.parse(toLease(handedOver, '1').metadata?.annotations?.[annotations.line] ?? '[]'),
    ).toEqual([['w2', 'carol', t0.getTime(), 0, 3, 60, 30]]);
  });

  describe('the line in two forms (ADR 16)', () => {
    const at = (s: number) => new Date(t0.getTime() + s * 1000);
    const ours = (id: string, s: number): Waiter => ({
      id,
      user: `user-${id}`,
      since: at(s),
      expires: at(s + 15),
      beat: 0,
      takesHandOver: true,
    });
    // As a replica of the version before ADR 16 writes its waiters.
    const earlier = [
      {
        id: 'e1',
        user: 'erin',
        since: at(1).toISOString(),
        expires: at(16).toISOString(),
        beat: 2,
        ho: 1,
      },
      {
        id: 'e2',
        user: 'eve',
        since: at(4).toISOString(),
        expires: at(19).toISOString(),
        ttl: 30,
        hold: 60,
        ho: 1,
      },
      // A replica from before ADR 12, which takes the lock itself (no `ho`, no `beat`).
      { id: 'e3', user: 'emil', since: at(5).toISOString(), expires: at(20).toISOString() },
    ];
    const mixed = (line: readonly Waiter[]) => ({
      metadata: {
        name: 'retrospective',
        annotations: {
          [annotations.queue]: JSON.stringify(earlier),
          [annotations.line]: toLease({ ...handedOver, queue: line }, '1').metadata!.annotations![
            annotations.line
          ]!,
        },
      },
      spec: { holderIdentity: 'bob', leaseTransitions: 7 },
    });

    it('writes entries of replicas that answer hand-overs as short arrays, a third of the bytes', () => {
      const line = Array.from({ length: 20 }, (_, i) => ({
        ...ours(`${i}`.padStart(12, 'x'), i),
        user: `client-${i}`,
      }));
      const a = toLease({ ...handedOver, queue: line }, '1').metadata!.annotations!;
      expect(a[annotations.queue]).toBeUndefined();
      // The same line as the first form writes it.
      const first = line.map((w) => ({ ...w, firstForm: true }));
      const b = toLease({ ...handedOver, queue: first }, '1').metadata!.annotations!;
      expect(b[annotations.line]).toBeUndefined();
      expect(a[annotations.line]!.length).toBeLessThan(b[annotations.queue]!.length / 2.5);
      expect(fromLease(toLease({ ...handedOver, queue: line }, '1')).state.queue).toEqual(line);
      // Renewed after its replica's clock stepped back: it expires before it came, and still reads.
      const stepped = [{ ...ours('s', 10), expires: at(-5) }];
      expect(fromLease(toLease({ ...handedOver, queue: stepped }, '1')).state.queue).toEqual(
        stepped,
      );
    });

    it('reads both forms as one line in the order the waiters came, each kept in its own form', () => {
      const line = [ours('n1', 0), ours('n2', 2), ours('n3', 6)];
      const { state } = fromLease(mixed(line));
      expect(state.queue?.map((w) => w.id)).toEqual(['n1', 'e1', 'n2', 'e2', 'e3', 'n3']);
      expect(state.queue?.find((w) => w.id === 'e2')).toMatchObject({
        ttlSeconds: 30,
        holdTimeoutSeconds: 60,
        takesHandOver: true,
        firstForm: true,
      });
      // Written back: an earlier replica still reads its own entries as it wrote them.
      const a = toLease(state, '2').metadata!.annotations!;
      expect(JSON.parse(a[annotations.queue]!)).toEqual(earlier);
      expect(
        fromLease({ metadata: { annotations: { [annotations.line]: a[annotations.line]! } } }).state
          .queue,
      ).toEqual(line);
      // The head of the first form served and gone, the rest stays where it was.
      const served = { ...state, queue: state.queue!.filter((w) => w.id !== 'e1') };
      const b = toLease(served, '3').metadata!.annotations!;
      expect(JSON.parse(b[annotations.queue]!)).toEqual(earlier.slice(1));
      // The last earlier entry gone: the first form's annotation goes too.
      const only = { ...state, queue: state.queue!.filter((w) => !w.firstForm) };
      expect(toLease(only, '4').metadata!.annotations![annotations.queue]).toBeUndefined();
    });

    it('writes every entry in the first form with `objects`, for an upgrade from an earlier version', () => {
      const line = [ours('n1', 0), ours('n2', 2)];
      const { state } = fromLease(mixed(line));
      const a = toLease(state, '2', undefined, 'objects').metadata!.annotations!;
      expect(a[annotations.line]).toBeUndefined();
      // What an earlier replica reads: the whole line, in order, with its own entries as it wrote them.
      const read = JSON.parse(a[annotations.queue]!) as { id: string }[];
      expect(read.map((e) => e.id)).toEqual(['n1', 'e1', 'n2', 'e2', 'e3']);
      expect(read.filter((e) => e.id.startsWith('e'))).toEqual(earlier);
      expect(read[0]).toEqual({
        id: 'n1',
        user: 'user-n1',
        since: at(0).toISOString(),
        expires: at(15).toISOString(),
        beat: 0,
        ho: 1,
      });
    });

    it('counts an id found twice once', () => {
      const twice = { ...ours('e1', 1), user: 'erin' };
      expect(fromLease(mixed([twice])).state.queue?.map((w) => w.id)).toEqual(['e1', 'e2', 'e3']);
      // And twice in one form.
      const line = toLease({ ...handedOver, queue: [ours('n1', 0), ours('n1', 1)] }, '1');
      expect(fromLease(line).state.queue?.map((w) => w.id)).toEqual(['n1']);
    });

    it('leaves out what it cannot read, and keeps what a later version adds to an entry', () => {
      const t = t0.getTime();
      const read = (line: unknown) =>
        fromLease({ metadata: { annotations: { [annotations.line]: JSON.stringify(line) } } }).state
          .queue;
      expect(read({ id: 'x' })).toBeUndefined();
      expect(
        read([
          ['ok', 'ann', t, 15_000, 1, 0, 0, 'later', { more: true }],
          { id: 'object', user: 'obj', since: t0.toISOString(), expires: t0.toISOString() },
          [1, 'ann', t, 0],
          ['id', 'ann', 't', 0],
          ['id', 'ann', t, 1.5],
          ['id', 'ann', 9e15, 0],
          ['id', 'ann', t, 2 ** 53],
          ['hold', 'ann', t, 0, null, 10 ** 9, 4000],
          ['stepped-back', 'ann', t, -20_000, 2],
          ['odd', 'ann', t, 0, -1, 0, 1e-7],
          'text',
          null,
        ]),
      ).toEqual([
        { id: 'ok', user: 'ann', since: t0, expires: at(15), beat: 1, takesHandOver: true },
        { id: 'hold', user: 'ann', since: t0, expires: t0, takesHandOver: true },
        // Renewed by a clock stepped back since the waiter came: expires before since.
        {
          id: 'stepped-back',
          user: 'ann',
          since: t0,
          expires: at(-20),
          beat: 2,
          takesHandOver: true,
        },
        { id: 'odd', user: 'ann', since: t0, expires: t0, takesHandOver: true },
      ]);
      // The first form, from anyone with write access to the Lease.
      const first = (queue: string) =>
        fromLease({ metadata: { annotations: { [annotations.queue]: queue } } }).state.queue;
      expect(first('[null, 1, "x", [], {"id": "a"}]')).toBeUndefined();
      expect(
        first(
          JSON.stringify([
            {
              id: 'a',
              user: 'ann',
              since: t0.toISOString(),
              expires: t0.toISOString(),
              ttl: 0.5,
              beat: -2,
            },
          ]),
        ),
      ).toEqual([{ id: 'a', user: 'ann', since: t0, expires: t0, firstForm: true }]);
      const garbage = { metadata: { annotations: { [annotations.line]: '[[' } } };
      expect(fromLease(garbage).state.queue).toBeUndefined();
    });
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

  it("keeps what else the Lease's spec carries, and writes the lock's own fields from its state", () => {
    const base = {
      metadata: {},
      spec: {
        holderIdentity: 'someone-before',
        leaseDurationSeconds: 5,
        acquireTime: new Date('2020-01-01T00:00:00Z'),
        renewTime: new Date('2020-01-01T00:00:01Z'),
        leaseTransitions: 99,
        strategy: 'OldestEmulationVersion',
        preferredHolder: 'replica-2',
      },
    };
    const written = toLease(handedOver, '1', base);
    expect(JSON.parse(JSON.stringify(written.spec))).toEqual({
      holderIdentity: 'bob',
      acquireTime: '2026-11-23T10:00:00.000000Z',
      renewTime: '2026-11-23T10:00:00.000000Z',
      leaseTransitions: 7,
      strategy: 'OldestEmulationVersion',
      preferredHolder: 'replica-2',
    });
    const released: LockState = { name: 'retrospective', token: 7, content: '' };
    expect(toLease(released, '1', base).spec?.holderIdentity).toBeUndefined();
    expect(toLease(released, '1', base).spec?.strategy).toBe('OldestEmulationVersion');
  });

  it('clears managedFields in a replace, and leaves them to kube-apiserver in a create', () => {
    expect(toLease(handedOver, '1').metadata?.managedFields).toEqual([{}]);
    const tracked = { metadata: { managedFields: [{ manager: 'kubectl', operation: 'Update' }] } };
    expect(toLease(handedOver, '1', tracked).metadata?.managedFields).toEqual([{}]);
    expect(toLease(handedOver, undefined).metadata?.managedFields).toBeUndefined();
  });
});
