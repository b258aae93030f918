import { describe, expect, it } from 'vitest';
import {
  lastRelease,
  missedReleases,
  parseSince,
  RecentReleases,
  type ReleasedFrame,
} from './replay.js';

const frame = (token: number, lock = 'retrospective'): ReleasedFrame => ({
  type: 'released',
  lock,
  content: `v${token}`,
  lastEditor: 'ana',
  releasedBy: 'ana',
  releasedAt: new Date(token * 1000).toISOString(),
  reason: 'released',
  token,
});

describe('resuming a WebSocket', () => {
  it('reads since= as lock:token pairs or one token for every lock, and names what is wrong', () => {
    const locks = ['retrospective', 'standup'];
    expect(parseSince(null, locks)).toBeUndefined();
    expect(parseSince('7', locks)).toEqual(
      new Map([
        ['retrospective', 7],
        ['standup', 7],
      ]),
    );
    expect(parseSince('retrospective:3,standup:9', locks)).toEqual(
      new Map([
        ['retrospective', 3],
        ['standup', 9],
      ]),
    );
    expect(parseSince('retrospective:x', locks)).toEqual(
      new Error('since: each item must be <lock>:<token>, or one token for every lock'),
    );
    expect(parseSince('other:1', locks)).toEqual(
      new Error('since: it names a lock that does not exist'),
    );
  });

  it('sends each missed release once, oldest first, merging history, recent frames and the Lease', () => {
    const missed = missedReleases(2, [
      [frame(1), frame(2), frame(3)],
      [frame(4), frame(3)],
      [frame(5)],
    ]);
    expect(missed.map((f) => f.token)).toEqual([3, 4, 5]);
    expect(missedReleases(5, [[frame(5)]])).toEqual([]);
  });

  it("takes the Lease's own last release, with the token it had before a later grant", () => {
    const base = {
      name: 'retrospective',
      content: 'x',
      releasedBy: 'ana',
      releasedAt: new Date(0),
      releaseReason: 'released' as const,
    };
    expect(lastRelease({ ...base, token: 4 })?.token).toBe(4);
    expect(lastRelease({ ...base, token: 5, holder: 'bob', acquiredAt: new Date(1) })?.token).toBe(
      4,
    );
    expect(lastRelease({ name: 'retrospective', content: '', token: 0 })).toBeUndefined();
  });

  it('keeps a bounded window of recent releases per lock', () => {
    const recent = new RecentReleases(2);
    for (const token of [1, 2, 3]) recent.add(frame(token));
    recent.add(frame(9, 'standup'));
    expect(recent.of('retrospective').map((f) => f.token)).toEqual([2, 3]);
    expect(recent.of('standup').map((f) => f.token)).toEqual([9]);
    expect(recent.of('other')).toEqual([]);
  });
});
