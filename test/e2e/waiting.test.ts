import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { checkHistory } from '../support/history.ts';
import { cluster, createNamespace } from '../support/kube.ts';
import { startApiServer, startController, type Service } from '../support/processes.ts';
import { raceForTheLock, summary } from '../support/workload.ts';

/** A waiter's entry stops counting this long after its replica last renewed it. */
const ttlSeconds = 3;
const env = { WAIT_QUEUE_TTL_SECONDS: String(ttlSeconds), LOG_LEVEL: 'info' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// About 20 s alone: a killed replica's waiters must lapse (a TTL of 3 s), and the history test
// runs its load through a kill and restart.
describe('waiting in line (avail?wait=) across two api-server replicas', () => {
  let namespace: string;
  const replicas: Service[] = [];

  const post = (replica: Service, verb: string, user: string, query = '') =>
    fetch(`${replica.url}/retrospective/${verb}${query}`, {
      method: 'POST',
      headers: { Username: user, Accept: 'application/json' },
    });
  const check = async (replica: Service) =>
    (await (
      await fetch(`${replica.url}/retrospective/check`, {
        headers: { Accept: 'application/json' },
      })
    ).json()) as { holder?: string; waiting: { user: string }[] };

  let controller: Service;

  beforeAll(async () => {
    namespace = await createNamespace('waiting');
    // The controller hands on a hand-over that no replica took up (its waiter's replica died).
    controller = await startController(cluster().kubeconfig, namespace);
    for (let i = 0; i < 2; i++)
      replicas.push(await startApiServer(cluster().kubeconfig, namespace, env));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await controller.stop();
  });

  it('serves waiters first come, first served, whichever replica each waits on', async () => {
    const [a, b] = replicas as [Service, Service];
    expect((await post(a, 'avail', 'holder')).status).toBe(200);
    const order: string[] = [];
    const waiters: Promise<void>[] = [];
    const names = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5'];
    for (const [i, name] of names.entries()) {
      const replica = i % 2 ? b : a;
      waiters.push(
        post(replica, 'avail', name, '?wait=30').then(async (res) => {
          expect(res.status).toBe(200);
          order.push(name);
          // Hand it on at once, from the other replica.
          expect((await post(i % 2 ? a : b, 'release', name)).status).toBe(200);
        }),
      );
      // Joined (as both replicas see it) before the next one comes.
      await expect
        .poll(async () => (await check(i % 2 ? a : b)).waiting.map((w) => w.user))
        .toEqual(names.slice(0, i + 1));
    }
    expect((await post(b, 'release', 'holder')).status).toBe(200);
    await Promise.all(waiters);
    expect(order).toEqual(names);
    expect((await check(a)).waiting).toEqual([]);
  });

  it(`hands on, within ${ttlSeconds} s, the lock a release handed to a killed replica's waiter`, async () => {
    const [a, b] = replicas as [Service, Service];
    const socket = await openSocket(a.url);
    expect((await post(a, 'avail', 'holder')).status).toBe(200);
    void post(b, 'avail', 'doomed', '?wait=60').catch(() => undefined);
    await expect.poll(async () => (await check(a)).waiting.length).toBe(1);
    const survivor = post(a, 'avail', 'survivor', '?wait=60');
    await expect.poll(async () => (await check(a)).waiting.length).toBe(2);

    const exited = new Promise((done) => b.child.once('exit', done));
    b.child.kill('SIGKILL');
    await exited;
    const released = performance.now();
    expect((await post(a, 'release', 'holder')).status).toBe(200);
    const res = await survivor;
    const seconds = (performance.now() - released) / 1000;
    console.info(`a dead replica's waiter stopped blocking after ${seconds.toFixed(2)} s`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ holder: 'survivor' });
    // The release handed the lock to the head of the line, the dead replica's waiter, at once;
    // nobody took it up, and the controller handed it on `ttlSeconds` after it saw that.
    expect(seconds).toBeLessThan(ttlSeconds + 2);
    const doomed = socket.frames.filter((f) => f.type === 'acquired' && f.holder === 'doomed');
    const handedOn = socket.frames.filter(
      (f) => f.type === 'released' && doomed.some((d) => d.token === f.token),
    );
    expect(handedOn.map((f) => f.reason)).toEqual(doomed.map(() => 'expired'));
    expect((await post(a, 'release', 'survivor')).status).toBe(200);
    socket.close();
    replicas[1] = await startApiServer(cluster().kubeconfig, namespace, env, {
      port: b.port,
      metricsPort: Number(new URL(b.metricsUrl).port),
    });
  });

  it(
    'keeps one holder at a time, growing tokens and every edit with 50 clients, half of them waiting in line, while a replica is killed and restarted',
    { timeout: 60_000 },
    async () => {
      const pick = () => replicas[Math.floor(Math.random() * replicas.length)]!.url;
      // A few seconds of load, the kill and restart, then load after it until more than 10
      // waiting clients were granted the lock (bounded by operations, not by a fixed time, so a
      // loaded machine proves the same; 35 s at most): the kill is what is under test.
      const done = Promise.withResolvers<undefined>();
      let waitedGrants = 0;
      let restartedAt = Number.POSITIVE_INFINITY; // until the replica is back
      let bInRotation = true;
      const enough = () => {
        if (waitedGrants > 10 && performance.now() - restartedAt >= 5000) done.resolve(undefined);
      };
      const racing = raceForTheLock({
        clients: 50,
        durationMs: 60_000,
        until: done.promise,
        // As a Service with a readiness probe does: the killed replica leaves the rotation before
        // its kill and comes back once it is ready (a replica still starting answers 503).
        url: () => (bInRotation ? pick() : replicas[0]!.url),
        waitSeconds: (i) => (i % 2 ? 5 : 0),
        onGrant: (_, waited) => {
          if (waited) waitedGrants++;
          enough();
        },
      });
      await sleep(3000);
      const b = replicas[1]!;
      bInRotation = false;
      const killed = performance.now();
      const exited = new Promise((done) => b.child.once('exit', done));
      b.child.kill('SIGKILL');
      await exited;
      replicas[1] = await startApiServer(cluster().kubeconfig, namespace, env, {
        port: b.port,
        metricsPort: Number(new URL(b.metricsUrl).port),
      });
      const restarted = performance.now();
      restartedAt = restarted;
      bInRotation = true;
      await sleep(5000);
      enough();
      const cap = setTimeout(() => done.resolve(undefined), 30_000);
      const workload = await racing;
      clearTimeout(cap);
      console.info(summary(workload));
      const waited = workload.ops.filter((o) => o.kind === 'avail' && o.client.match(/[13579]$/));
      const blockingGrants = waited.filter((o) => o.outcome === 'granted').length;
      console.info(`${blockingGrants} grants to waiting clients`);
      // Only requests in flight on the killed replica may go unanswered.
      const unexplained = workload.failed.filter(
        (o) => o.status !== -1 || o.start > killed || o.end < killed,
      );
      const at = (t: number) => `${((t - killed) / 1000).toFixed(3)} s`;
      for (const o of unexplained)
        console.info(
          `unexplained: ${o.client} ${o.kind} ${o.status} from ${at(o.start)} to ${at(o.end)} ` +
            `(killed at 0 s, back at ${at(restarted)}): ${o.detail ?? ''}`,
        );
      if (unexplained.length)
        console.info(
          replicas
            .map((r) => r.output())
            .join('\n')
            .split('\n')
            .filter(
              (l) =>
                unexplained.some(
                  (o) => l.includes(`"${o.client}"`) || l.includes(`"token":${o.token}`),
                ) || /handed back|could not/.test(l),
            )
            .join('\n'),
        );
      expect(unexplained).toEqual([]);
      expect(blockingGrants).toBeGreaterThan(10);
      expect(checkHistory(workload.ops, [])).toEqual([]);
    },
  );
});
