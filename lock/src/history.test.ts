import { describe, expect, it } from 'vitest';
import { appendBounded, type HistoryEntry } from './history.js';

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
