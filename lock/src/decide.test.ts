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
