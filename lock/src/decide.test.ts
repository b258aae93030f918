import { describe, expect, it } from 'vitest';
import { decide, renewCoalesceMs, type Command } from './decide.js';
import type { LockState } from './model.js';

const t0 = new Date('2026-11-23T10:00:00.000Z');
const later = (ms: number) => new Date(t0.getTime() + ms);
const free: LockState = { name: 'retrospective', token: 4, content: 'old' };
const held = (overrides: Partial<LockState> = {}): LockState => ({
  ...free,
  holder: 'ana',
  acquiredAt: t0,
  renewedAt: t0,
  token: 5,
  ...overrides,
});

const outcome = (state: LockState, command: Command, now = later(5000)) => {
  const d = decide(state, command, now);
  return d.ok ? d.outcome : d.refusal.code;
};

describe('decide', () => {
  it.each<[string, LockState, Command, string]>([
    ['avail on a free lock', free, { kind: 'avail', user: 'ana' }, 'granted'],
    ['avail by the holder', held(), { kind: 'avail', user: 'ana' }, 'renewed'],
    ['avail by someone else', held(), { kind: 'avail', user: 'bob' }, 'locked'],
    ['change on a free lock', free, { kind: 'change', user: 'ana', content: 'x' }, 'not_held'],
    ['change by someone else', held(), { kind: 'change', user: 'bob', content: 'x' }, 'locked'],
    ['change by the holder', held(), { kind: 'change', user: 'ana', content: 'x' }, 'updated'],
    [
      'change with the current token',
      held(),
      { kind: 'change', user: 'ana', content: 'x', ifMatch: 5 },
      'updated',
    ],
    [
      'change with a stale token',
      held(),
      { kind: 'change', user: 'ana', content: 'x', ifMatch: 4 },
      'stale_token',
    ],
    ['release by the holder', held(), { kind: 'release', user: 'ana' }, 'released'],
    ['release by someone else', held(), { kind: 'release', user: 'bob' }, 'locked'],
    ['release on a free lock', free, { kind: 'release', user: 'ana' }, 'not_held'],
    [
      'release with a stale token',
      held(),
      { kind: 'release', user: 'ana', ifMatch: 1 },
      'stale_token',
    ],
    ['force on a held lock', held(), { kind: 'force', by: 'admin' }, 'forced'],
    ['force on a free lock', free, { kind: 'force', by: 'admin' }, 'not_held'],
    ['force pinned to the hold in place', held(), { kind: 'force', by: 'a', ifMatch: 5 }, 'forced'],
    [
      'force pinned to a hold that is gone',
      held(),
      { kind: 'force', by: 'a', ifMatch: 4 },
      'stale_token',
    ],
    [
      'expire the judged hold',
      held(),
      { kind: 'expire', by: 'c', holder: 'ana', token: 5, renewedAt: t0 },
      'expired',
    ],
    [
      'expire a hold renewed since',
      held({ renewedAt: later(1) }),
      { kind: 'expire', by: 'c', holder: 'ana', token: 5, renewedAt: t0 },
      'superseded',
    ],
    [
      'expire a hold granted again since',
      held({ token: 6 }),
      { kind: 'expire', by: 'c', holder: 'ana', token: 5, renewedAt: t0 },
      'superseded',
    ],
    [
      'expire a free lock',
      free,
      { kind: 'expire', by: 'c', holder: 'ana', token: 5, renewedAt: t0 },
      'not_held',
    ],
  ])('%s -> %s', (_label, state, command, expected) => {
    expect(outcome(state, command)).toBe(expected);
  });

  it('grants with the next token, now as acquire and renew time, and the hold timeout', () => {
    const d = decide(free, { kind: 'avail', user: 'ana', holdTimeoutSeconds: 30 }, t0);
    expect(d).toMatchObject({
      ok: true,
      next: {
        holder: 'ana',
        token: 5,
        acquiredAt: t0,
        renewedAt: t0,
        holdTimeoutSeconds: 30,
        content: 'old',
      },
    });
  });

  it('renews by moving renewTime, and coalesces renewals closer than a second', () => {
    const state = held();
    const soon = decide(state, { kind: 'avail', user: 'ana' }, later(renewCoalesceMs - 1));
    expect(soon.ok && soon.next).toBe(state);
    const late = decide(state, { kind: 'avail', user: 'ana' }, later(renewCoalesceMs));
    expect(late).toMatchObject({
      ok: true,
      next: { renewedAt: later(renewCoalesceMs), token: 5, acquiredAt: t0 },
    });
  });

  it('records who changed the content, and renews the hold', () => {
    const d = decide(held(), { kind: 'change', user: 'ana', content: 'new' }, later(9000));
    expect(d).toMatchObject({
      ok: true,
      next: {
        content: 'new',
        lastEditor: 'ana',
        lastEditedAt: later(9000),
        renewedAt: later(9000),
      },
    });
  });

  it('releases keeping the token and the content, with provenance', () => {
    const d = decide(held({ content: 'kept' }), { kind: 'release', user: 'ana' }, later(9000));
    expect(d).toMatchObject({
      ok: true,
      next: {
        token: 5,
        content: 'kept',
        releasedBy: 'ana',
        releasedAt: later(9000),
        releaseReason: 'released',
      },
    });
    expect(d.ok && d.next.holder).toBeUndefined();
  });

  it('writes content and releases in one decision when the release carries it', () => {
    const release: Command = { kind: 'release', user: 'ana', content: 'new', ifMatch: 5 };
    const d = decide(held({ content: 'old' }), release, later(9000));
    expect(d).toMatchObject({
      ok: true,
      outcome: 'released',
      next: { content: 'new', lastEditor: 'ana', lastEditedAt: later(9000), releasedBy: 'ana' },
    });
    expect(d.ok && d.next.holder).toBeUndefined();
    // Refused as a release is: nothing is written, the content stays.
    expect(outcome(held({ content: 'old' }), { ...release, ifMatch: 4 })).toBe('stale_token');
    expect(outcome(held(), { ...release, user: 'bob' })).toBe('locked');
  });
});

describe('decide: the waiting line', () => {
  const waiter = (id: string, expiresIn = 15_000) => ({
    id,
    user: `user-${id}`,
    since: t0,
    expires: later(expiresIn),
  });
  const line = (...ids: string[]) => ({ queue: ids.map((id) => waiter(id)) });

  it('gives a free lock only to the head of the line, and takes the head out', () => {
    const state: LockState = { ...free, ...line('w1', 'w2') };
    expect(outcome(state, { kind: 'avail', user: 'eve' })).toBe('queued');
    expect(outcome(state, { kind: 'avail', user: 'user-w2', waiter: 'w2' })).toBe('queued');
    const d = decide(state, { kind: 'avail', user: 'user-w1', waiter: 'w1' }, later(5000));
    expect(d).toMatchObject({
      ok: true,
      outcome: 'granted',
      next: { holder: 'user-w1', token: 5, grantedTo: 'w1' },
    });
    expect(d.ok && d.next.queue?.map((w) => w.id)).toEqual(['w2']);
  });

  it('skips entries whose replica stopped renewing them', () => {
    const state: LockState = { ...free, queue: [waiter('gone', 1000), waiter('w2')] };
    const d = decide(state, { kind: 'avail', user: 'user-w2', waiter: 'w2' }, later(5000));
    expect(d).toMatchObject({ ok: true, next: { holder: 'user-w2', queue: undefined } });
  });

  const change = (
    state: LockState,
    join: LockState['queue'],
    leave: string[] = [],
    limits: { max: number; perUser: number; behind?: Map<string, Set<string>> } = {
      max: 10,
      perUser: 1,
    },
  ) => {
    const d = decide(state, { kind: 'line', join: join ?? [], leave, ...limits }, later(1));
    return d.ok ? d.next : undefined;
  };

  it('joins after those who came before, at most max and per user, once per id; leaves; renews entries', () => {
    const state: LockState = { ...held(), ...line('w1') };
    expect(change(state, [waiter('w2')])?.queue?.map((w) => w.id)).toEqual(['w1', 'w2']);
    // Joining again is a renewal: the entry keeps its place.
    const renewed = change(state, [waiter('w1', 60_000)]);
    expect(renewed?.queue?.map((w) => [w.id, w.expires])).toEqual([['w1', later(60_000)]]);
    // Over the cap, or a second place for one user: left out, and nothing to write.
    expect(change(state, [waiter('w2')], [], { max: 1, perUser: 1 })).toBe(state);
    const twice = { ...waiter('w2'), user: 'user-w1' };
    expect(change(state, [twice])).toBe(state);
    expect(change(state, [twice], [], { max: 10, perUser: 2 })?.queue).toHaveLength(2);
    // Joins and leaves of one replica in one write.
    const both = change(state, [waiter('w2'), waiter('w3')], ['w1']);
    expect(both?.queue?.map((w) => w.id)).toEqual(['w2', 'w3']);
    expect(change(both!, [], ['w2', 'w3'])?.queue).toBeUndefined();
    // Leaving a line one is not in changes nothing.
    expect(change(state, [], ['w9'])).toBe(state);
  });

  it('orders the line by when each waiter began to wait, not by when its join was written', () => {
    const since = (id: string, ms: number) => ({
      ...waiter(id),
      since: new Date(t0.getTime() + ms),
    });
    const state: LockState = { ...held(), queue: [since('w1', 0), since('w3', 2000)] };
    // Written after w3's, but came before it (its replica waited for a release to carry it).
    expect(change(state, [since('w2', 1000)])?.queue?.map((w) => w.id)).toEqual(['w1', 'w2', 'w3']);
    expect(change(state, [since('w0', -1)])?.queue?.map((w) => w.id)).toEqual(['w0', 'w1', 'w3']);
    // Came at the same moment as the last: after it.
    expect(change(state, [since('w4', 2000)])?.queue?.map((w) => w.id)).toEqual(['w1', 'w3', 'w4']);
  });

  it('never puts a join ahead of those its replica saw in line when it came, whatever the clocks', () => {
    const since = (id: string, ms: number) => ({
      ...waiter(id),
      since: new Date(t0.getTime() + ms),
    });
    const state: LockState = { ...held(), queue: [since('w1', 0), since('w3', 2000)] };
    // b's replica runs a minute behind: by its clock, b came before everyone.
    const b = since('b', -60_000);
    const joined = (seen: string[]) =>
      change(state, [b], [], {
        max: 10,
        perUser: 1,
        behind: new Map([['b', new Set(seen)]]),
      })?.queue?.map((w) => w.id);
    expect(joined(['w1', 'w3'])).toEqual(['w1', 'w3', 'b']);
    // w3 was written after b came: only then do the clocks order them.
    expect(joined(['w1'])).toEqual(['w1', 'b', 'w3']);
    expect(joined([])).toEqual(['b', 'w1', 'w3']);
    // Someone it saw who has left since holds no place.
    expect(joined(['gone'])).toEqual(['b', 'w1', 'w3']);
  });

  it('puts a waiter whose entry was dropped (it lapsed, or the Lease was made again) back at the end', () => {
    const came = { ...waiter('w2'), since: new Date(t0.getTime() + 1000) };
    const state: LockState = { ...free, queue: [waiter('gone', 1000), came] };
    // Its replica renews it (beat > 0): it came first, but those who waited meanwhile go first.
    const rejoined = decide(
      state,
      {
        kind: 'line',
        join: [{ ...waiter('gone', 20_000), beat: 3 }],
        leave: [],
        max: 10,
        perUser: 1,
      },
      later(5000),
    );
    expect(rejoined.ok && rejoined.next.queue?.map((w) => w.id)).toEqual(['w2', 'gone']);
    const fresh: LockState = { ...free, token: 9 };
    expect(change(fresh, [waiter('w1')])?.queue?.map((w) => w.id)).toEqual(['w1']);
  });

  it('judges entries by the liveness it is given, not by their clock', () => {
    // A replica whose clock runs 20 s ahead wrote this entry: by our clock it "expired" long ago.
    const skewed = { ...waiter('w1'), expires: later(-20_000) };
    const state: LockState = { ...free, queue: [skewed, waiter('w2')] };
    const alive = () => true;
    expect(
      decide(state, { kind: 'avail', user: 'user-w2', waiter: 'w2' }, later(1), alive),
    ).toMatchObject({
      ok: false,
      refusal: { code: 'queued' },
    });
    expect(
      decide(state, { kind: 'avail', user: 'user-w1', waiter: 'w1' }, later(1), alive),
    ).toMatchObject({ ok: true, next: { holder: 'user-w1', grantedTo: 'w1' } });
  });

  it('records the request a hold is granted to; another request of the holder claims it', () => {
    const granted = decide(free, { kind: 'avail', user: 'ana', claim: 'r1' }, t0);
    expect(granted).toMatchObject({ ok: true, next: { holder: 'ana', grantedTo: 'r1' } });
    const hold = granted.ok ? granted.next : free;
    // The same request renewing soon after: nothing to write.
    const same = decide(hold, { kind: 'avail', user: 'ana', claim: 'r1' }, later(10));
    expect(same.ok && same.next).toBe(hold);
    // Another request of ana's: a write, even that soon, so the hold is no longer r1's alone.
    const claimed = decide(hold, { kind: 'avail', user: 'ana', claim: 'r2' }, later(10));
    expect(claimed).toMatchObject({ ok: true, outcome: 'renewed', next: { grantedTo: undefined } });
    const now = claimed.ok ? claimed.next : hold;
    // Claimed once: later renewals by yet other requests coalesce again.
    const third = decide(now, { kind: 'avail', user: 'ana', claim: 'r3' }, later(20));
    expect(third.ok && third.next).toBe(now);
    // A hand-back pinned to the request that left no longer applies; ana's own release does.
    const release = { kind: 'release', user: 'ana', ifMatch: 5 } as const;
    expect(outcome(now, { ...release, claim: 'r1' })).toBe('superseded');
    expect(outcome(now, release)).toBe('released');
    // A waiter of ana's taking the lock she already holds renews it, and claims it too.
    const take = decide(hold, { kind: 'avail', user: 'ana', waiter: 'w', claim: 'w' }, later(10));
    expect(take).toMatchObject({ ok: true, outcome: 'renewed', next: { grantedTo: undefined } });
  });

  it('hands the lock over in the releasing write, only to a waiter whose replica takes hand-overs', () => {
    const taker = { ...waiter('w1'), takesHandOver: true, holdTimeoutSeconds: 30, ttlSeconds: 9 };
    const state: LockState = { ...held(), queue: [taker, waiter('w2')] };
    const d = decide(state, { kind: 'release', user: 'ana' }, later(10));
    expect(d).toMatchObject({
      ok: true,
      outcome: 'released',
      next: {
        holder: 'user-w1',
        token: 6,
        grantedTo: 'w1',
        unclaimedSeconds: 9,
        holdTimeoutSeconds: 30,
        releasedBy: 'ana',
      },
    });
    expect(d.ok && d.next.queue?.map((w) => w.id)).toEqual(['w2']);
    // A waiter of an earlier version's replica takes the free lock itself, as it always did.
    const old: LockState = { ...held(), queue: [waiter('w2')] };
    expect(decide(old, { kind: 'release', user: 'ana' }, later(10))).toMatchObject({
      ok: true,
      next: { holder: undefined, queue: [{ id: 'w2' }] },
    });
  });

  it('expires a hand-over nobody took up, but not once it was taken up', () => {
    const handed: LockState = { ...held(), grantedTo: 'w1', unclaimedSeconds: 15 };
    const judged = {
      kind: 'expire',
      by: 'c',
      holder: 'ana',
      token: 5,
      renewedAt: t0,
      unclaimed: true,
    } as const;
    expect(outcome(handed, judged)).toBe('expired');
    const confirmed = decide(handed, { kind: 'confirm', waiter: 'w1', token: 5 }, later(1));
    expect(confirmed).toMatchObject({ ok: true, next: { unclaimedSeconds: undefined } });
    expect(outcome(confirmed.ok ? confirmed.next : handed, judged)).toBe('superseded');
  });

  it('lets the holder renew while others wait', () => {
    expect(outcome({ ...held(), ...line('w1') }, { kind: 'avail', user: 'ana' })).toBe('renewed');
  });
});
