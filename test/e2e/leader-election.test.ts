import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockService } from '../../lock/src/index.ts';
import { LeaseStore } from '../../runtime/src/kube/lease-store.ts';
import { adminConfig, cluster, createNamespace, kubectl, leaseHolder } from '../support/kube.ts';
import { fastElection, metric, startController, type Service } from '../support/processes.ts';

const leader = (c: Service) => metric(c.url, 'retrospective_controller_leader');
const leaseMs = Number(fastElection.LEADER_ELECTION_LEASE_DURATION_SECONDS) * 1000;
const retryMs = Number(fastElection.LEADER_ELECTION_RETRY_PERIOD_SECONDS) * 1000;

describe('two controller processes', () => {
  let namespace: string;
  let controllers: Service[];

  beforeAll(async () => {
    namespace = await createNamespace('leader');
    controllers = await Promise.all(
      [0, 1].map(() => startController(cluster().kubeconfig, namespace)),
    );
  });
  afterAll(async () => Promise.all(controllers.map((c) => c.stop())));

  it(
    'elect exactly one leader, and the other takes over within lease duration + retry period',
    { timeout: 60_000 },
    async () => {
      await expect
        .poll(async () => (await Promise.all(controllers.map(leader))).sort(), { timeout: 15_000 })
        .toEqual([0, 1]);
      const values = await Promise.all(controllers.map(leader));
      const old = controllers[values.indexOf(1)]!;
      const heir = controllers[values.indexOf(0)]!;
      expect(await leaseHolder(namespace, 'retrospective-controller')).toMatch(
        new RegExp(`_${old.child.pid}$`),
      );

      old.child.kill('SIGKILL');
      const killed = performance.now();
      await expect
        .poll(() => leader(heir), { timeout: leaseMs + retryMs + 5000, interval: 50 })
        .toBe(1);
      const takeover = performance.now() - killed;
      console.info(`new leader after ${takeover.toFixed(0)} ms (bound: ${leaseMs + retryMs} ms)`);
      // The lease was waited out (renewed every retry period until the kill), and not much more:
      // 1.5 s for the heir's GET and PUT, polling /metrics and late timers on a busy machine.
      expect(takeover).toBeGreaterThan(leaseMs - retryMs);
      expect(takeover).toBeLessThan(leaseMs + retryMs + 1500);

      // Reconciling continues under the new leader: it records the next acquisition.
      const store = new LeaseStore({
        kubeConfig: adminConfig(),
        namespace,
        locks: ['retrospective'],
      });
      await store.start();
      const service = new LockService({ store, locks: ['retrospective'] });
      await expect.poll(() => store.cached('retrospective')).toBeTruthy();
      await service.execute('retrospective', { kind: 'avail', user: 'after-failover' });
      await expect
        .poll(
          async () =>
            (
              await kubectl(
                'get',
                'events',
                '-n',
                namespace,
                '--field-selector',
                'involvedObject.name=retrospective,reason=Acquired',
              )
            ).stdout,
          { timeout: 10_000 },
        )
        .toMatch(/after-failover acquired retrospective/);
      await store.close();
    },
  );

  it(
    'a leader whose Lease is taken steps down at its next renewal, then leads again once it lapses',
    { timeout: 30_000 },
    async () => {
      const current = controllers.find(
        (c) => c.child.exitCode === null && c.child.signalCode === null,
      )!;
      await expect.poll(() => leader(current), { timeout: 10_000 }).toBe(1);
      const now = new Date().toISOString().replace('Z', '000Z');
      const patch = JSON.stringify({
        spec: { holderIdentity: 'intruder', renewTime: now, leaseDurationSeconds: 3 },
      });
      const { code, stderr } = await kubectl(
        'patch',
        'lease',
        'retrospective-controller',
        '-n',
        namespace,
        '--type=merge',
        '-p',
        patch,
      );
      expect(code, stderr).toBe(0);
      const taken = performance.now();
      await expect.poll(() => leader(current), { timeout: retryMs + 3000, interval: 50 }).toBe(0);
      console.info(
        `stepped down ${(performance.now() - taken).toFixed(0)} ms after losing the Lease`,
      );
      await expect.poll(() => leader(current), { timeout: 3000 + retryMs + 5000 }).toBe(1);
    },
  );
});
