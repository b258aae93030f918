import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LockState, LockStore, Versioned } from '../../lock/src/index.ts';
import { startTestApp } from '../../api-server/src/testing/harness.ts';
import { LeaseStore } from '../../runtime/src/kube/lease-store.ts';
import { checkHistory } from '../support/history.ts';
import { adminConfig, createNamespace } from '../support/kube.ts';
import { raceForTheLock, raceGrants, summary } from '../support/workload.ts';

/**
 * A Lease store with a check-then-act gap, as a careless implementation would have: it decides on
 * the state it read, but writes over whatever is stored now (it reads the current version just
 * before writing), so two replicas can both grant a lock they both saw free.
 */
class BlindStore implements LockStore {
  constructor(private readonly inner: LeaseStore) {}
  start = () => this.inner.start();
  cached = (name: string) => this.inner.cached(name);
  read = (name: string) => this.inner.read(name);
  ensure = (names: readonly string[]) => this.inner.ensure(names);
  subscribe = (...args: Parameters<LockStore['subscribe']>) => this.inner.subscribe(...args);
  ready = () => this.inner.ready();
  watching = () => this.inner.watching();
  close = () => this.inner.close();

  async replace(next: LockState, base: Versioned): Promise<Versioned | 'conflict'> {
    const now = await this.inner.read(next.name);
    return this.inner.replace(next, now ?? base);
  }
}

/**
 * The test of the race test: the concurrency test's workload, bounded as it is (the same number
 * of grants), run against two in-process replicas on a build with a check-then-act gap. The
 * history checker must report violations; if it did not, the shortened run would prove nothing.
 */
// Up to 35 s beside other files: the same 100 grants as the concurrency test, so that what is
// proven is the bound that test uses.
describe('the history checker, on a build with a check-then-act gap', () => {
  let namespace: string;
  const apps: Awaited<ReturnType<typeof startTestApp<BlindStore>>>[] = [];

  beforeAll(async () => {
    namespace = await createNamespace('broken');
    for (let i = 0; i < 2; i++) {
      const lease = new LeaseStore({
        kubeConfig: adminConfig(),
        namespace,
        locks: ['retrospective'],
      });
      await lease.start();
      apps.push(await startTestApp({}, undefined, { store: new BlindStore(lease) }));
    }
  });
  afterAll(async () => {
    for (const app of apps) {
      await app.close();
      await app.store.close();
    }
  });

  it(`finds double grants within ${raceGrants} grants`, { timeout: 120_000 }, async () => {
    const workload = await raceForTheLock({
      clients: 50,
      durationMs: 60_000,
      grants: raceGrants,
      url: () => apps[Math.floor(Math.random() * apps.length)]!.url,
    });
    const problems = checkHistory(workload.ops, []);
    console.info(
      `${summary(workload)}; checker found ${problems.length} problems, e.g. ${problems[0]}`,
    );
    expect(problems.length).toBeGreaterThan(0);
  });
});
