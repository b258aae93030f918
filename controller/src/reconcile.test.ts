import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LockService, MemoryHistory, MemoryStore } from '@retrospective/lock';
import { LockController } from './controller.js';
import { MemoryEventRecorder } from './events.js';
import { createControllerMetrics } from './metrics.js';

const t0 = Date.parse('2026-11-23T10:00:00.000Z');
const running: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of running.splice(0)) await stop();
});

/**
 * The controller as it is wired in production (store subscription, sightings, Events, history,
 * work queue), leading over a memory-backed lock, with a clock the test moves by hand. Queue
 * timers run on real time and never fire within a test; `reconcile` stands in for them.
 */
async function fixture(options: { heldTooLongSeconds?: number; holdTimeoutSeconds?: number } = {}) {
  let now = t0;
  const clock = () => new Date(now);
  const store = new MemoryStore();
  await store.ensure(['retrospective']);
  const service = new LockService({ store, locks: ['retrospective'], clock });
  const events = new MemoryEventRecorder();
  const history = new MemoryHistory(3);
  const metrics = createControllerMetrics({
    locks: ['retrospective'],
    heldTooLongSeconds: options.heldTooLongSeconds ?? 900,
  });
  const controller = new LockController({
    store,
    service,
    events,
    history,
    metrics,
    clock,
    logger: pino({ level: 'silent' }),
    policy: () => ({
      holdTimeoutSeconds: options.holdTimeoutSeconds ?? 0,
      heldTooLongSeconds: options.heldTooLongSeconds ?? 900,
    }),
  });
  controller.start();
  const term = new AbortController();
  const leading = controller.lead(term.signal);
  const stop = async () => {
    term.abort();
    await leading;
    await controller.stop();
  };
  running.push(stop);
  const settle = () => new Promise((r) => setTimeout(r, 0));
  await settle();
  return {
    store,
    service,
    events,
    history,
    metrics,
    controller,
    stop,
    advance: async (seconds: number) => {
      now += seconds * 1000;
      await settle();
    },
    reconcile: async () => {
      const outcome = await controller.reconcile('retrospective');
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

  it('hands on a hand-over its waiter never took up (its api-server died), to the next in line', async () => {
    const f = await fixture();
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    const waiter = (id: string, user: string) => ({
      id,
      user,
      since: new Date(t0),
      expires: new Date(t0 + 60_000),
      ttlSeconds: 60,
      beat: 1,
      takesHandOver: true,
    });
    await f.service.execute('retrospective', {
      kind: 'line',
      join: [waiter('w1', 'bob'), waiter('w2', 'carol')],
      leave: [],
      max: 10,
      perUser: 1,
    });
    await f.service.execute('retrospective', { kind: 'release', user: 'ana' });
    await f.advance(1);
    expect(f.service.state('retrospective')).toMatchObject({
      holder: 'bob',
      grantedTo: 'w1',
      unclaimedSeconds: 60,
      token: 2,
    });
    // Nobody takes it up: bob's api-server is gone.
    await f.advance(58);
    await f.reconcile();
    expect(f.service.state('retrospective').holder).toBe('bob');
    await f.advance(2);
    await f.reconcile();
    await f.advance(0);
    expect(f.service.state('retrospective')).toMatchObject({
      holder: 'carol',
      grantedTo: 'w2',
      token: 3,
      releaseReason: 'expired',
      releasedBy: 'retrospective-controller',
    });
    expect(f.events.events.map((e) => [e.reason, e.message])).toContainEqual([
      'HandOverExpired',
      'the hand-over of retrospective to bob was not taken up within 60 s (its api-server is gone)',
    ]);
  });

  it('applies the configured timeout to holds that carry none', async () => {
    const f = await fixture({ holdTimeoutSeconds: 10 });
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    await f.advance(10);
    await f.reconcile();
    expect(f.service.state('retrospective').releaseReason).toBe('expired');
    await f.advance(0);
    expect(f.events.events.map((e) => e.reason)).toContain('HoldExpired');
  });

  it("expires a hold by the time-to-live its client asked for, not the lock's timeout", async () => {
    const f = await fixture({ holdTimeoutSeconds: 600 });
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana', holdTimeoutSeconds: 3 });
    await f.advance(2);
    await f.reconcile();
    expect(f.service.state('retrospective').holder).toBe('ana');
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    await f.advance(2);
    await f.reconcile();
    expect(f.service.state('retrospective').holder).toBe('ana');
    await f.advance(2);
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

  it('stops acting the moment its term ends, and records nothing afterwards', async () => {
    const f = await fixture({ holdTimeoutSeconds: 10, heldTooLongSeconds: 5 });
    await f.service.execute('retrospective', { kind: 'avail', user: 'ana' });
    await f.advance(1);
    const recorded = f.events.events.length;
    await f.stop();
    expect(f.controller.isLeading).toBe(false);
    await f.advance(60);
    expect(await f.reconcile()).toBeUndefined();
    await f.service.execute('retrospective', { kind: 'release', user: 'ana' });
    await f.advance(1);
    expect(f.service.state('retrospective').releaseReason).toBe('released');
    expect(f.events.events).toHaveLength(recorded);
    expect(await f.history.list('retrospective')).toEqual([]);
    expect(await f.value('retrospective_controller_leader')).toEqual([
      'retrospective_controller_leader 0',
    ]);
  });
});
