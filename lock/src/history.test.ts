import { describe, expect, it } from 'vitest';
import { appendBounded, tokenFloor, type HistoryEntry } from './history.js';

const entry = (token: number, content = `v${token}`): HistoryEntry => ({
  token,
  releasedBy: 'ana',
  releasedAt: new Date(token * 1000).toISOString(),
  reason: 'released',
  content,
});

describe('the bounded history', () => {
  it('keeps the newest entries, oldest first', () => {
    let entries: HistoryEntry[] = [];
    for (let t = 1; t <= 5; t++) entries = appendBounded(entries, entry(t), 3, 1e6);
    expect(entries.map((e) => e.token)).toEqual([3, 4, 5]);
  });

  it('ignores a release it already has (a relist or a new leader may replay it)', () => {
    const entries = appendBounded([entry(1), entry(2)], entry(2), 10, 1e6);
    expect(entries.map((e) => e.token)).toEqual([1, 2]);
  });

  it('drops the oldest entries to stay under the byte limit, keeping at least the newest', () => {
    const big = (t: number) => entry(t, 'x'.repeat(400));
    const entries = appendBounded([big(1), big(2), big(3)], big(4), 50, 1200);
    expect(entries.map((e) => e.token)).toEqual([3, 4]);
    expect(appendBounded([], entry(1, 'y'.repeat(5000)), 50, 1000)).toHaveLength(1);
  });
});

describe('the token floor', () => {
  it('is the highest of the recorded floor and the kept tokens', () => {
    expect(tokenFloor(3, [entry(1), entry(7)])).toBe(7);
    expect(tokenFloor(9, [entry(1)])).toBe(9);
    expect(tokenFloor(0, [])).toBe(0);
  });

  it('ignores entries without a usable token instead of becoming NaN', () => {
    const damaged = [entry(4), { ...entry(5), token: undefined }, { ...entry(6), token: '8' }];
    expect(tokenFloor(2, damaged as unknown as HistoryEntry[])).toBe(4);
    expect(tokenFloor(Number.NaN, [])).toBe(0);
  });
});
