import { describe, expect, it } from 'vitest';
import type { LockState, Waiter } from './model.js';
import { LineSightings } from './sightings.js';

const wall = new Date('2026-11-23T10:00:00.000Z').getTime();
const waiter = (id: string, expiresAt: number, ttlSeconds = 3): Waiter => ({
  id,
  user: `user-${id}`,
  since: new Date(wall),
  expires: new Date(expiresAt),
  ttlSeconds,
});
const state = (...queue: Waiter[]): LockState => ({ name: 'l', token: 1, content: '', queue });

describe('when a waiter still counts', () => {
  it('counts an entry for its TTL after this process saw it renewed, whatever its clock says', () => {
    let now = 0;
    const sightings = new LineSightings(() => now);
    // Written by a replica whose clock is 20 s behind: by wall time it is long "expired".
    const behind = waiter('w1', wall - 20_000);
    expect(sightings.liveness(state(behind))(behind)).toBe(true);
    now = 2_900;
    expect(sightings.liveness(state(behind))(behind)).toBe(true);
    now = 3_100;
    expect(sightings.liveness(state(behind))(behind)).toBe(false);
    // Renewed (a later `expires` from the same replica): counts again from this sighting.
    const renewed = waiter('w1', wall - 19_000);
    expect(sightings.liveness(state(renewed))(renewed)).toBe(true);
    now = 6_000;
    expect(sightings.liveness(state(renewed))(renewed)).toBe(true);
    now = 6_200;
    expect(sightings.liveness(state(renewed))(renewed)).toBe(false);
  });

  it('does not take an older state seen late for a renewal', () => {
    let now = 0;
    const sightings = new LineSightings(() => now);
    sightings.observe(state(waiter('w1', wall + 2000)));
    now = 2_000;
    sightings.observe(state(waiter('w1', wall + 1000)));
    now = 3_100;
    const current = waiter('w1', wall + 2000);
    expect(sightings.liveness(state(current))(current)).toBe(false);
  });

  it('uses 15 s for entries that carry no TTL, and forgets deleted locks', () => {
    let now = 0;
    const sightings = new LineSightings(() => now);
    const old = { ...waiter('w1', wall), ttlSeconds: undefined };
    sightings.observe(state(old));
    now = 14_000;
    expect(sightings.liveness(state(old))(old)).toBe(true);
    now = 15_100;
    expect(sightings.liveness(state(old))(old)).toBe(false);
    sightings.forget('l');
    expect(sightings.liveness(state(old))(old)).toBe(true);
  });
});

describe('renewal counts', () => {
  it('take a higher count for a renewal even when the wall clock was stepped back', () => {
    let now = 0;
    const sightings = new LineSightings(() => now);
    const before = { ...waiter('w1', wall + 60_000), beat: 4 };
    sightings.observe(state(before));
    now = 2_500;
    // Renewed by a replica whose clock was set back a minute: `expires` went down, the count up.
    const after = { ...waiter('w1', wall), beat: 5 };
    now = 4_000;
    expect(sightings.liveness(state(after))(after)).toBe(true);
    now = 6_900;
    expect(sightings.liveness(state(after))(after)).toBe(true);
    now = 7_100;
    expect(sightings.liveness(state(after))(after)).toBe(false);
  });
});

describe('entries of replicas of two versions', () => {
  it('take an entry rewritten without its renewal count (or given one again) for renewed', () => {
    let now = 0;
    const sightings = new LineSightings(() => now);
    sightings.observe(state({ ...waiter('w1', wall), beat: 7 }));
    now = 2_000;
    // A replica that keeps no count rewrote the line: the entry lost its count.
    const stripped = { ...waiter('w1', wall), beat: undefined };
    sightings.observe(state(stripped));
    now = 4_500;
    expect(sightings.liveness(state(stripped))(stripped)).toBe(true);
    // Its own replica renews it again, with a count.
    const renewed = { ...waiter('w1', wall), beat: 8 };
    now = 4_600;
    sightings.observe(state(renewed));
    now = 7_000;
    expect(sightings.liveness(state(renewed))(renewed)).toBe(true);
  });
});
