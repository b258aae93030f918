import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cluster, createNamespace, kubectl, proxiedKubeconfig } from '../support/kube.ts';
import { waitFor } from '../../hack/cluster/process.ts';
import { metric, startApiServer, startController, type Service } from '../support/processes.ts';
import { SlowApiserver } from '../support/slow-apiserver.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const leader = (c: Service) => metric(c.url, 'retrospective_controller_leader');

/** The times (ms) a controller's log says it started and stopped leading, in order. */
function terms(output: string) {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { time: number; msg: string })
    .filter((entry) => entry.msg === 'started leading' || entry.msg === 'stopped leading');
}

describe('a leader whose renewals the API server answers slowly', () => {
  let namespace: string;
  let proxy: SlowApiserver;
  let slowLeader: Service;
  let successor: Service;
  let api: Service;

  beforeAll(async () => {
    namespace = await createNamespace('handover');
    proxy = new SlowApiserver(new URL(cluster().server));
    const kubeconfig = proxiedKubeconfig('handover', await proxy.listen(), namespace);
    slowLeader = await startController(kubeconfig, namespace, { LOG_LEVEL: 'info' });
    await waitFor(
      'the first controller to lead',
      async () => (await leader(slowLeader)) === 1,
      15_000,
    );
    successor = await startController(cluster().kubeconfig, namespace, { LOG_LEVEL: 'info' });
    api = await startApiServer(cluster().kubeconfig, namespace);
  });
  afterAll(async () => {
    for (const service of [api, successor, slowLeader] as (Service | undefined)[])
      await service?.stop();
    await proxy.close();
  });

  it(
    'stops acting before its successor starts: no Event recorded twice, never two terms at once',
    { timeout: 90_000 },
    async () => {
      // Grants and releases all along, so both controllers have Events to record.
      const done = new AbortController();
      let cycles = 0;
      const traffic = (async () => {
        while (!done.signal.aborted) {
          const user = `user-${cycles++}`;
          await fetch(`${api.url}/retrospective/avail`, { headers: { Username: user } });
          await fetch(`${api.url}/retrospective/release`, {
            method: 'POST',
            headers: { Username: user },
          });
          await sleep(100);
        }
      })();
      await sleep(3000);
      // From now on the leader's reads and renewals of its Lease take 2.5 s each: longer than
      // its renew deadline allows.
      proxy.delayMs = 2500;
      proxy.slow = (req) => (req.url ?? '').includes('/leases/retrospective-controller');
      await expect.poll(() => leader(successor), { timeout: 20_000, interval: 100 }).toBe(1);
      await sleep(4000);
      done.abort();
      await traffic;
      proxy.slow = undefined;
      await sleep(2000); // the last Events land

      const old = terms(slowLeader.output());
      const next = terms(successor.output());
      console.info(
        `${cycles} grant/release cycles; held back ${proxy.held} leader-Lease calls; old leader: ${old.map((t) => t.msg).join(', ')}`,
      );
      // One term at a time in the old leader: started, stopped, started, stopped, ...
      old.forEach((t, i) =>
        expect(t.msg, `entry ${i}`).toBe(i % 2 === 0 ? 'started leading' : 'stopped leading'),
      );
      const stopped = old.findLast((t) => t.msg === 'stopped leading');
      const started = next.find((t) => t.msg === 'started leading');
      expect(
        stopped && started && stopped.time < started.time,
        `old stopped at ${stopped?.time}, new started at ${started?.time}`,
      ).toBe(true);
      console.info(
        `the old leader stopped ${started!.time - stopped!.time} ms before its successor started`,
      );

      // Every grant and release recorded exactly once.
      const events = JSON.parse(
        (await kubectl('get', 'events', '-n', namespace, '-o', 'json')).stdout,
      ) as {
        items: { reason: string; message: string; count?: number }[];
      };
      const seen = new Map<string, number>();
      for (const e of events.items.filter(
        (e) => e.reason === 'Acquired' || e.reason === 'Released',
      )) {
        const key = `${e.reason} ${e.message.replace(/ after \d+ s$/, '')}`;
        seen.set(key, (seen.get(key) ?? 0) + (e.count ?? 1));
      }
      const twice = [...seen].filter(([, n]) => n > 1);
      expect(seen.size).toBeGreaterThan(20);
      expect(twice).toEqual([]);
    },
  );
});
