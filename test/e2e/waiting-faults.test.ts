import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { checkHistory, type Op } from '../support/history.ts';
import { cluster, createNamespace, kubectl, proxiedKubeconfig, repoRoot } from '../support/kube.ts';
import { startApiServer, startController, type Service } from '../support/processes.ts';
import { SlowApiserver } from '../support/slow-apiserver.ts';
import { recorded } from '../support/workload.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Entries lapse this long after their replica last renewed them (short, to keep the test short). */
const ttl = { WAIT_QUEUE_TTL_SECONDS: '3' };
const ttlMs = 3000;
/** How long the API server stays unreachable from replica B. */
const outageMs = 30_000;
/** How long each waiter holds the lock once it has it. */
const holdMs = 1000;

/**
 * The line under the faults that made waiters fall out of it: 20 callers wait on two replicas,
 * then replica B loses the API server for 30 s, then the Lease is deleted (and made again by the
 * controller) while they wait, then B's clock jumps 20 s ahead. Every caller still connected is
 * served exactly once, nobody who left ever holds the lock, and the history is consistent.
 */
// About 45 s: the outage lasts 30 s, ten times the waiters' TTL and as long as a control-plane
// upgrade can keep a replica cut off, and 24 callers then hold the lock one second each.
describe('the waiting line through an outage, a deleted Lease and a skewed clock', () => {
  let namespace: string;
  let proxy: SlowApiserver;
  let a: Service;
  let b: Service;
  let controller: Service;

  beforeAll(async () => {
    namespace = await createNamespace('line-faults');
    proxy = new SlowApiserver(new URL(cluster().server));
    const throughProxy = proxiedKubeconfig('line-faults', await proxy.listen(), namespace);
    controller = await startController(cluster().kubeconfig, namespace);
    a = await startApiServer(cluster().kubeconfig, namespace, ttl);
    b = await startApiServer(throughProxy, namespace, {
      ...ttl,
      // B's wall clock can be moved ahead while it runs (SIGUSR2), as a badly set clock would be.
      NODE_OPTIONS: `--import=${resolve(repoRoot, 'test/support/clock-offset.ts')}`,
      CLOCK_STEP_MS: '20000',
    });
  });
  afterAll(async () => {
    for (const service of [a, b, controller]) await service.stop();
    await proxy.close();
  });

  it(
    'serves every waiter still connected exactly once, and nobody who left',
    { timeout: 150_000 },
    async () => {
      const viewer = await openSocket(a.url);
      const line = async () =>
        (
          (await (
            await fetch(`${a.url}/retrospective/check`, { headers: { Accept: 'application/json' } })
          ).json()) as { waiting: { user: string }[] }
        ).waiting.map((w) => w.user);
      const post = (replica: Service, verb: string, user: string) =>
        fetch(`${replica.url}/retrospective/${verb}`, {
          method: 'POST',
          headers: { Username: user },
        });

      expect((await post(a, 'avail', 'blocker')).status).toBe(200);

      // Who waits where, in the order they join. Two pause callers on B trigger the later faults
      // when they get the lock; two leavers hang up during the faults and must never get it.
      const ops: Op[] = [];
      const plan = [
        ...Array.from({ length: 10 }, (_, i) => [
          { name: `a-${i}`, replica: a },
          { name: `b-${i}`, replica: b },
        ]).flat(),
        { name: 'leaver-b', replica: b },
        { name: 'leaver-a', replica: b },
      ];
      plan.splice(14, 0, { name: 'pause-delete', replica: b });
      plan.splice(18, 0, { name: 'pause-clock', replica: b });
      const leavers = new Map(
        ['leaver-a', 'leaver-b'].map((name) => [name, new AbortController()] as const),
      );
      const faults: string[] = [];
      const served: string[] = [];
      /** The token each caller was answered with. */
      const servedTokens = new Map<string, number>();
      const waiting: Promise<void>[] = [];
      for (const { name, replica } of plan) {
        waiting.push(
          (async () => {
            if (name.startsWith('pause')) {
              const res = await fetch(`${replica.url}/retrospective/avail?wait=200`, {
                headers: { Username: name, Accept: 'application/json' },
              });
              expect(res.status, name).toBe(200);
              const { token } = (await res.json()) as { token: number };
              served.push(name);
              servedTokens.set(name, token);
              if (name === 'pause-delete') {
                faults.push('lease deleted');
                expect(
                  (await kubectl('-n', namespace, 'delete', 'lease', 'retrospective')).code,
                ).toBe(0);
                return; // its hold went with the Lease
              }
              faults.push('clock +20 s');
              b.child.kill('SIGUSR2');
              await sleep(holdMs);
              await fetch(`${replica.url}/retrospective/release`, {
                method: 'POST',
                headers: { Username: name, 'If-Match': String(token) },
              });
              return;
            }
            const grant = await recorded(ops, replica.url, name, 'avail', {
              wait: 200,
              signal: leavers.get(name)?.signal,
            });
            if (leavers.has(name)) {
              expect(grant.status, name).toBe(-1); // it hung up before its turn
              return;
            }
            expect(grant.status, name).toBe(200);
            served.push(name);
            if (grant.token !== undefined) servedTokens.set(name, grant.token);
            const ifMatch = { 'If-Match': String(grant.token) };
            const content = `${name} was here`;
            const token = grant.token;
            await recorded(ops, replica.url, name, 'change', {
              headers: { ...ifMatch, Retrospective: content },
              extra: { token, content },
            });
            await sleep(holdMs);
            await recorded(ops, replica.url, name, 'release', {
              headers: ifMatch,
              extra: { token },
            });
          })(),
        );
        await expect.poll(async () => (await line()).includes(name), { timeout: 5000 }).toBe(true);
      }

      // B loses the API server; the line moves on without B's waiters, whose entries lapse.
      proxy.cut();
      faults.push('B cut off');
      expect((await post(a, 'release', 'blocker')).status).toBe(200);
      await sleep(outageMs / 2);
      leavers.get('leaver-b')?.abort();
      await sleep(outageMs / 2);
      proxy.restore();
      faults.push('B back');
      // The pause callers were all on B: the Lease is deleted, then B's clock jumps, later on.
      await expect.poll(() => faults.includes('lease deleted'), { timeout: 60_000 }).toBe(true);
      leavers.get('leaver-a')?.abort();
      await Promise.all(waiting);

      console.info(`faults in order: ${faults.join(', ')}; served: ${served.join(' ')}`);
      expect(faults).toEqual(['B cut off', 'B back', 'lease deleted', 'clock +20 s']);
      const callers = plan.map((p) => p.name).filter((n) => !n.startsWith('leaver'));
      expect([...served].sort()).toEqual([...callers].sort());
      // A release hands the lock to the head of the line at once; when that waiter's replica cannot
      // take it up (cut off) or its caller left, the hold is handed on: by the controller within the
      // waiters' TTL (`expired`), or handed back by the replica (`released`). Any other hold is the
      // one its caller was answered with: one per caller, none for those who left.
      const frames = viewer.frames;
      const releasedAfter = (token: unknown) =>
        frames.find((f) => f.type === 'released' && f.token === token);
      const handedOn = (f: (typeof frames)[number]) => {
        const end = releasedAfter(f.token);
        if (!end) return false;
        const held = Date.parse(String(end.releasedAt)) - Date.parse(String(f.since));
        return ['expired', 'released'].includes(String(end.reason)) && held <= ttlMs + 3000;
      };
      const kept = frames
        .filter((f) => f.type === 'acquired' && f.holder !== 'blocker')
        .filter((f) => servedTokens.get(String(f.holder)) === f.token || !handedOn(f));
      expect(kept.map((f) => String(f.holder)).sort()).toEqual([...callers].sort());
      expect(checkHistory(ops, [])).toEqual([]);
      await expect.poll(async () => line()).toEqual([]);
      viewer.close();
    },
  );
});
