import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { UnknownLockError } from '../errors.js';
import type { LockState } from '../model.js';
import { LockService, type MutationResult } from '../service.js';
import type { LockStore } from '../store.js';
import { transitions, type LockEvent } from '../transitions.js';

/** Two stores over the same backing data, as two API replicas would see it. */
export interface ContractFixture {
  readonly replicaA: LockStore;
  readonly replicaB: LockStore;
  /** Makes a fresh, free lock and returns its name. */
  newLock(): Promise<string>;
  close(): Promise<void>;
}

function granted(result: MutationResult): LockState {
  if (!result.ok) throw new Error(`expected success, got ${result.refusal.code}`);
  return result.state;
}

const refusal = (result: MutationResult) => (result.ok ? 'applied' : result.refusal.code);

/** The contract every LockStore must meet, run against MemoryStore and LeaseStore alike. */
export function lockStoreContract(label: string, setup: () => Promise<ContractFixture>) {
  describe(`LockStore contract: ${label}`, () => {
    let fixture: ContractFixture | undefined;
    let lock: string;
    let a: LockService;
    let b: LockService;

    beforeEach(async () => {
      fixture ??= await setup();
      const { replicaA, replicaB } = fixture;
      lock = await fixture.newLock();
      a = new LockService({ store: replicaA, locks: [lock] });
      b = new LockService({ store: replicaB, locks: [lock] });
      await expect.poll(() => replicaA.cached(lock) && replicaB.cached(lock)).toBeTruthy();
    });

    afterAll(async () => fixture?.close());

    it('starts free, empty, with token 0', () => {
      expect(a.state(lock)).toMatchObject({ name: lock, token: 0, content: '' });
      expect(a.state(lock).holder).toBeUndefined();
    });

    it('grants the first avail with token 1 and renews it for the holder', async () => {
      const first = await a.execute(lock, { kind: 'avail', user: 'ana' });
      expect(first).toMatchObject({
        ok: true,
        outcome: 'granted',
        state: { holder: 'ana', token: 1 },
      });
      const again = await b.execute(lock, { kind: 'avail', user: 'ana' });
      expect(again).toMatchObject({
        ok: true,
        outcome: 'renewed',
        state: { holder: 'ana', token: 1 },
      });
    });

    it('refuses a second user while the lock is held, naming the holder', async () => {
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      const result = await b.execute(lock, { kind: 'avail', user: 'bob' });
      expect(result).toMatchObject({
        ok: false,
        refusal: { code: 'locked', state: { holder: 'ana' } },
      });
    });

    it('lets only the holder change the content', async () => {
      expect(refusal(await a.execute(lock, { kind: 'change', user: 'ana', content: 'x' }))).toBe(
        'not_held',
      );
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      expect(refusal(await b.execute(lock, { kind: 'change', user: 'bob', content: 'x' }))).toBe(
        'locked',
      );
      const changed = granted(
        await b.execute(lock, { kind: 'change', user: 'ana', content: 'notes' }),
      );
      expect(changed).toMatchObject({ content: 'notes', lastEditor: 'ana', holder: 'ana' });
    });

    it('releases with provenance, keeps the content and hands out a larger token next time', async () => {
      const first = granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      granted(await a.execute(lock, { kind: 'change', user: 'ana', content: 'v1' }));
      const released = granted(await b.execute(lock, { kind: 'release', user: 'ana' }));
      expect(released).toMatchObject({
        holder: undefined,
        content: 'v1',
        releasedBy: 'ana',
        releaseReason: 'released',
      });
      const second = granted(await b.execute(lock, { kind: 'avail', user: 'bob' }));
      expect(second.token).toBeGreaterThan(first.token);
    });

    it('refuses a stale token with stale_token and writes nothing', async () => {
      const held = granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      granted(await a.execute(lock, { kind: 'release', user: 'ana' }));
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      const stale = await b.execute(lock, {
        kind: 'change',
        user: 'ana',
        content: 'late',
        ifMatch: held.token,
      });
      expect(refusal(stale)).toBe('stale_token');
      expect((await fixture!.replicaB.read(lock))?.state.content).toBe('');
    });

    it('grants exactly one of many concurrent avails across replicas', async () => {
      const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
      const results = await Promise.all(
        users.map((user, i) => (i % 2 ? a : b).execute(lock, { kind: 'avail', user })),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok).every((r) => refusal(r) === 'locked')).toBe(true);
    });

    it('answers concurrent renewals by the holder without failing', async () => {
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      const renewals = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (i % 2 ? a : b).execute(lock, { kind: 'avail', user: 'ana' }),
        ),
      );
      expect(renewals.every((r) => r.ok && r.outcome === 'renewed')).toBe(true);
    });

    it('never refuses on a stale cache: a release on one replica frees the lock on the other at once', async () => {
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      await expect.poll(() => fixture!.replicaB.cached(lock)?.state.holder).toBe('ana');
      granted(await a.execute(lock, { kind: 'release', user: 'ana' }));
      // B's cache may still say "held by ana"; the grant must not wait for it.
      expect(await b.execute(lock, { kind: 'avail', user: 'bob' })).toMatchObject({
        ok: true,
        outcome: 'granted',
      });
    });

    it('tells every replica about acquisitions and releases', async () => {
      const seen: LockEvent[] = [];
      const stop = fixture!.replicaB.subscribe(
        (c) => c.name === lock && c.next && seen.push(...transitions(c.prev, c.next)),
      );
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      granted(await a.execute(lock, { kind: 'change', user: 'ana', content: 'done' }));
      granted(await a.execute(lock, { kind: 'release', user: 'ana' }));
      await expect.poll(() => seen.map((e) => e.type)).toEqual(['acquired', 'released']);
      expect(seen[1]).toMatchObject({
        content: 'done',
        lastEditor: 'ana',
        releasedBy: 'ana',
        token: 1,
      });
      stop();
    });

    it('expires only the hold it judged', async () => {
      const held = granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      const judged = {
        kind: 'expire',
        by: 'controller',
        holder: 'ana',
        token: held.token,
      } as const;
      expect(refusal(await a.execute(lock, { ...judged, renewedAt: new Date(0) }))).toBe(
        'superseded',
      );
      const expired = await a.execute(lock, { ...judged, renewedAt: held.renewedAt });
      expect(expired).toMatchObject({
        ok: true,
        outcome: 'expired',
        state: { holder: undefined, token: held.token },
      });
      expect(refusal(await b.execute(lock, { kind: 'release', user: 'ana' }))).toBe('not_held');
    });

    it('keeps the waiting line, and serves its head first on the other replica', async () => {
      granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      const now = new Date();
      const waiter = (id: string) => ({
        id,
        user: `user-${id}`,
        since: now,
        expires: new Date(now.getTime() + 60_000),
        ttlSeconds: 60,
        takesHandOver: true,
      });
      const line = { max: 10, perUser: 1 };
      granted(await a.execute(lock, { kind: 'line', join: [waiter('w1')], leave: [], ...line }));
      granted(await b.execute(lock, { kind: 'line', join: [waiter('w2')], leave: [], ...line }));
      const read = await fixture!.replicaB.read(lock);
      expect(read?.state.queue).toEqual([waiter('w1'), waiter('w2')]);
      // The release hands the lock to the head of the line in the same write.
      const served = granted(await b.execute(lock, { kind: 'release', user: 'ana' }));
      expect(served).toMatchObject({
        holder: 'user-w1',
        grantedTo: 'w1',
        unclaimedSeconds: 60,
        releasedBy: 'ana',
      });
      expect(served.queue?.map((w) => w.id)).toEqual(['w2']);
      expect(refusal(await b.execute(lock, { kind: 'avail', user: 'eve' }))).toBe('locked');
      expect((await fixture!.replicaA.read(lock))?.state).toMatchObject({
        grantedTo: 'w1',
        unclaimedSeconds: 60,
      });
      // Its replica takes it up; a confirmation of another hold changes nothing.
      const wrong = { kind: 'confirm', waiter: 'w2', token: served.token } as const;
      expect(granted(await a.execute(lock, wrong)).unclaimedSeconds).toBe(60);
      const right = { kind: 'confirm', waiter: 'w1', token: served.token } as const;
      expect(granted(await a.execute(lock, right)).unclaimedSeconds).toBeUndefined();
      granted(await a.execute(lock, { kind: 'line', join: [], leave: ['w2'], ...line }));
      expect((await fixture!.replicaA.read(lock))?.state.queue).toBeUndefined();
      const done = granted(await a.execute(lock, { kind: 'release', user: 'user-w1' }));
      expect(done.grantedTo).toBeUndefined();
    });

    it('pins a forced release to the hold the admin saw (If-Match)', async () => {
      const held = granted(await a.execute(lock, { kind: 'avail', user: 'ana' }));
      expect(
        refusal(await b.execute(lock, { kind: 'force', by: 'admin', ifMatch: held.token - 1 })),
      ).toBe('stale_token');
      granted(await b.execute(lock, { kind: 'force', by: 'admin', ifMatch: held.token }));
    });

    it('rejects locks that are not configured', async () => {
      await expect(a.execute('nope', { kind: 'avail', user: 'ana' })).rejects.toThrow(
        UnknownLockError,
      );
      expect(() => a.state('nope')).toThrow(UnknownLockError);
    });
  });
}
