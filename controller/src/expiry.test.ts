import { describe, expect, it } from 'vitest';
import type { LockState } from '@retrospective/lock';
import { crossesLongHold, isExpired, nextCheckIn, sight } from './expiry.js';

const t0 = new Date('2026-11-23T10:00:00.000Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

/** A lock state builder: held by ana since t0 with a 30 s hold timeout unless told otherwise. */
function lock(overrides: Partial<LockState> = {}): LockState {
  return {
    name: 'retrospective',
    holder: 'ana',
    acquiredAt: t0,
    renewedAt: t0,
    token: 1,
    content: '',
    holdTimeoutSeconds: 30,
    ...overrides,
  };
}

describe('hold expiry, judged on the local clock from the last sighting', () => {
  const seen = sight(undefined, lock(), t0);

  it.each([
    ['well before the deadline', 10, false],
    ['just before the deadline', 29.999, false],
    ['at the deadline', 30, true],
    ['after the deadline', 45, true],
  ])('%s (%s s) -> expired %s', (_label, seconds, expected) => {
    expect(isExpired(lock(), seen, at(seconds))).toBe(expected);
  });

  it.each([
    ['an hour in the future', at(3600)],
    ['an hour in the past', at(-3600)],
    ['the epoch', new Date(0)],
  ])('ignores a renewTime written by a clock skewed to %s', (_label, renewedAt) => {
    const skewed = lock({ renewedAt });
    const sighting = sight(undefined, skewed, t0);
    expect(isExpired(skewed, sighting, at(29))).toBe(false);
    expect(isExpired(skewed, sighting, at(30))).toBe(true);
  });

  it('restarts the clock when the hold is renewed, and keeps it when nothing changed', () => {
    const unchanged = sight(seen, lock(), at(20));
    expect(unchanged).toBe(seen);
    const renewed = sight(seen, lock({ renewedAt: at(20) }), at(21));
    expect(isExpired(lock({ renewedAt: at(20) }), renewed, at(40))).toBe(false);
    expect(isExpired(lock({ renewedAt: at(20) }), renewed, at(51))).toBe(true);
  });

  it.each([
    ['a free lock', lock({ holder: undefined, acquiredAt: undefined })],
    ['a hold without a timeout', lock({ holdTimeoutSeconds: undefined })],
  ])('never expires %s', (_label, state) => {
    expect(isExpired(state, sight(undefined, state, t0), at(1e6))).toBe(false);
  });
});

describe('the held-too-long threshold', () => {
  it.each([
    ['before the threshold', 899, undefined, false],
    ['at the threshold', 900, undefined, true],
    ['after the threshold', 1200, undefined, true],
    ['after the threshold, already counted for this token', 1200, 1, false],
    ['after the threshold, counted for an earlier hold', 1200, 0, true],
  ])('%s -> count %s', (_label, seconds, counted, expected) => {
    expect(crossesLongHold(lock(), at(seconds), 900, counted)).toBe(expected);
  });

  it('counts a hold once however often it is reconciled', () => {
    let counted: number | undefined;
    let count = 0;
    for (let s = 0; s <= 3000; s += 7) {
      if (crossesLongHold(lock(), at(s), 900, counted)) {
        count++;
        counted = lock().token;
      }
    }
    expect(count).toBe(1);
  });
});

describe('when to look again', () => {
  it('wakes for the earlier of expiry and threshold, capped', () => {
    const seen = sight(undefined, lock(), t0);
    expect(nextCheckIn(lock(), seen, at(10), 900, 60_000)).toBe(20_000);
    expect(nextCheckIn(lock({ holdTimeoutSeconds: undefined }), seen, at(10), 15, 60_000)).toBe(
      5_000,
    );
    expect(nextCheckIn(lock({ holdTimeoutSeconds: undefined }), seen, at(10), 900, 60_000)).toBe(
      60_000,
    );
    expect(
      nextCheckIn(
        lock({ holder: undefined, acquiredAt: undefined }),
        undefined,
        at(10),
        900,
        60_000,
      ),
    ).toBeUndefined();
  });
});
