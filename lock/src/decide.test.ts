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
      next: { holder: 'user-w1', token: 5 },
    });
    expect(d.ok && d.next.queue?.map((w) => w.id)).toEqual(['w2']);
  });

  it('skips entries whose replica stopped renewing them', () => {
    const state: LockState = { ...free, queue: [waiter('gone', 1000), waiter('w2')] };
    const d = decide(state, { kind: 'avail', user: 'user-w2', waiter: 'w2' }, later(5000));
    expect(d).toMatchObject({ ok: true, next: { holder: 'user-w2', queue: undefined } });
  });

  it('joins at the end, at most max, once per id; leaves; renews entries', () => {
    const state: LockState = { ...held(), ...line('w1') };
    const joined = decide(state, { kind: 'enqueue', waiter: waiter('w2'), max: 2 }, later(1));
    expect(joined.ok && joined.next.queue?.map((w) => w.id)).toEqual(['w1', 'w2']);
    expect(outcome(state, { kind: 'enqueue', waiter: waiter('w1'), max: 2 })).toBe('queued');
    const full = joined.ok ? joined.next : state;
    expect(outcome(full, { kind: 'enqueue', waiter: waiter('w3'), max: 2 })).toBe('queue_full');
    const left = decide(full, { kind: 'dequeue', ids: ['w1'] }, later(1));
    expect(left.ok && left.next.queue?.map((w) => w.id)).toEqual(['w2']);
    const renewed = decide(
      full,
      { kind: 'heartbeat', ids: ['w2'], expires: later(60_000) },
      later(1),
    );
    expect(renewed.ok && renewed.next.queue?.map((w) => w.expires)).toEqual([
      later(15_000),
      later(60_000),
    ]);
    // A renewal for entries that are gone changes nothing (no write).
    const none = decide(full, { kind: 'heartbeat', ids: ['w9'], expires: later(60_000) }, later(1));
    expect(none.ok && none.next).toBe(full);
  });

  it('lets the holder renew while others wait', () => {
    expect(outcome({ ...held(), ...line('w1') }, { kind: 'avail', user: 'ana' })).toBe('renewed');
  });
});
