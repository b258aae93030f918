import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LockService, MemoryStore } from '@retrospective/lock';
import { MemoryEventRecorder } from './events.js';
import { sight, type Sighting } from './expiry.js';
import { MemoryHistory } from './history.js';
import { createControllerMetrics } from './metrics.js';
import { reconcileLock } from './reconcile.js';
import { recordChange } from './triggers.js';

const t0 = Date.parse('2026-11-23T10:00:00.000Z');

/** A memory-backed lock with a clock the test moves by hand. */
async function fixture(options: { heldTooLongSeconds?: number; holdTimeoutSeconds?: number } = {}) {
  let now = t0;
  const clock = () => new Date(now);
  const store = new MemoryStore();
  await store.ensure(['retrospective']);
  const service = new LockService({ store, locks: ['retrospective'], clock });
  const events = new MemoryEventRecorder();
  const history = new MemoryHistory(3);
  const metrics = createControllerMetrics();
  const sightings = new Map<string, Sighting>();
  const deps = {
    store,
    service,
    events,
    metrics,
    clock,
    sightings,
    longHoldCounted: new Map<string, number>(),
    logger: pino({ level: 'silent' }),
    holdTimeoutSeconds: options.holdTimeoutSeconds ?? 0,
    heldTooLongSeconds: options.heldTooLongSeconds ?? 900,
  };
  store.subscribe((change) => {
    const sighting = change.next && sight(sightings.get(change.name), change.next, clock());
    if (sighting) sightings.set(change.name, sighting);
    void recordChange({ events, history, metrics }, change);
  });
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return {
    store,
    service,
    events,
    history,
    metrics,
    advance: async (seconds: number) => {
      now += seconds * 1000;
      await settle();
    },
    reconcile: async () => {
      const outcome = await reconcileLock(deps, 'retrospective');
      await settle();
      return outcome;
    },
    value: async (name: string) =>
      (await metrics.registry.getSingleMetricAsString(name))
        .split('\n')
        .filter((l) => !l.startsWith('#')),
  };
}

describe('reconciling a lock', () => {
  it('expires a hold idle past its timeout, keeps the token and fences the old holder', async () => {
    const f = await fixture();
    await f.service.execute('retrospective', {
      kind: 'avail',
      user: 'ana',
      holdTimeoutSeconds: 30,
    });
    await f.advance(1);
    await f.service.execute('retrospective', { kind: 'change', user: 'ana', content: 'v1' });
    await f.advance(29);
    expect(await f.reconcile()).toEqual({ requeueAfterMs: 1000 });
    expect(f.service.state('retrospective').holder).toBe('ana');
    await f.advance(1);
    await f.reconcile();
    expect(f.service.state('retrospective')).toMatchObject({
      holder: undefined,
      token: 1,
      releaseReason: 'expired',
      content: 'v1',
    });
    expect(await f.value('retrospective_lock_expirations_total')).toEqual([
      'retrospective_lock_expirations_total{lock="retrospective"} 1',
    ]);
    const late = await f.service.execute('retrospective', {
      kind: 'change',
      user: 'ana',
      content: 'late',
      ifMatch: 1,
    });
    expect(late).toMatchObject({ ok: false, refusal: { code: 'not_held' } });
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    const stale = await f.service.execute('retrospective', {
      kind: 'change',
      user: 'ana',
      content: 'late',
      ifMatch: 1,
    });
    expect(stale).toMatchObject({ ok: false, refusal: { code: 'stale_token' } });
    expect(f.service.state('retrospective').content).toBe('v1');
  });

  it('applies the configured timeout to holds that carry none', async () => {
    const f = await fixture({ holdTimeoutSeconds: 10 });
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    await f.advance(10);
    await f.reconcile();
    expect(f.service.state('retrospective').releaseReason).toBe('expired');
  });

  it('counts a long hold once and records HeldTooLong once, however often it reconciles', async () => {
    const f = await fixture({ heldTooLongSeconds: 60 });
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    for (let i = 0; i < 10; i++) {
      await f.advance(15);
      await f.reconcile();
    }
    expect(await f.value('retrospective_lock_long_holds_total')).toEqual([
      'retrospective_lock_long_holds_total{lock="retrospective"} 1',
    ]);
    expect(f.events.events.filter((e) => e.reason === 'HeldTooLong')).toHaveLength(1);
    await f.service.execute('retrospective', { kind: 'release', user: 'ana' });
    await f.service.execute('retrospective', { kind: 'avail', user: 'bob' });
    await f.advance(61);
    await f.reconcile();
    expect(await f.value('retrospective_lock_long_holds_total')).toEqual([
      'retrospective_lock_long_holds_total{lock="retrospective"} 2',
    ]);
  });

  it('records Events, the hold duration and a bounded history in release order', async () => {
    const f = await fixture();
    for (const [i, user] of ['ana', 'bob', 'carol', 'dan', 'eve'].entries()) {
      await f.service.execute('retrospective', { kind: 'avail', user });
      await f.advance(10 * (i + 1));
      await f.service.execute('retrospective', {
        kind: 'change',
        user,
        content: `notes by ${user}`,
      });
      await f.service.execute('retrospective', { kind: 'release', user });
      await f.advance(1);
    }
    const releases = await f.history.list('retrospective');
    expect(releases.map((r) => [r.lastEditor, r.token, r.content])).toEqual([
      ['carol', 3, 'notes by carol'],
      ['dan', 4, 'notes by dan'],
      ['eve', 5, 'notes by eve'],
    ]);
    expect(f.events.events.map((e) => e.reason)).toEqual(
      Array(5).fill(['Acquired', 'Released']).flat(),
    );
    expect(await f.value('retrospective_lock_hold_duration_seconds')).toContain(
      'retrospective_lock_hold_duration_seconds_sum{lock="retrospective"} 150',
    );
  });
});
