import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { waitFor } from '../../hack/cluster/process.ts';
import { cluster, createNamespace, leaseEvents } from '../support/kube.ts';
import { metric, startApiServer, startController, type Service } from '../support/processes.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const historySize = 3;

describe('the controller under a scripted workload', () => {
  let namespace: string;
  let api!: Service;
  let controller!: Service;

  beforeAll(async () => {
    namespace = await createNamespace('ctl');
    const kubeconfig = cluster().kubeconfig;
    controller = await startController(kubeconfig, namespace, {
      HELD_TOO_LONG_SECONDS: '2',
      HISTORY_SIZE: String(historySize),
    });
    const leading = async () =>
      (await metric(controller.url, 'retrospective_controller_leader')) === 1;
    await waitFor('controller leadership', leading, 15_000);
    api = await startApiServer(kubeconfig, namespace, {
      HOLD_TIMEOUT_SECONDS: '3',
      HISTORY_SIZE: String(historySize),
    });
  });
  afterAll(async () =>
    Promise.all(
      [api as Service | undefined, controller as Service | undefined].map(async (s) => s?.stop()),
    ),
  );

  const call = (verb: string, user: string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/retrospective/${verb}`, {
      method: verb === 'avail' ? 'GET' : 'POST',
      headers: { Username: user, Accept: 'application/json', ...headers },
    });

  it(
    'expires, fences, records Events and history, and counts exactly',
    { timeout: 90_000 },
    async () => {
      const socket = await openSocket(api.url);

      // Hold 1: short, released by its holder.
      expect((await call('avail', 'ana')).status).toBe(200);
      await call('change', 'ana', { Retrospective: 'from ana' });
      expect((await call('release', 'ana')).status).toBe(200);

      // Hold 2: renewed every second for 4 s: never expires, crosses the 2 s threshold once.
      expect((await call('avail', 'bob')).status).toBe(200);
      for (let i = 0; i < 4; i++) {
        await sleep(1000);
        expect((await call('avail', 'bob')).status).toBe(200);
      }
      await call('change', 'bob', { Retrospective: 'from bob' });
      expect((await call('release', 'bob')).status).toBe(200);

      // Hold 3: left idle: crosses the threshold, then expires after 3 s.
      const grant = (await (await call('avail', 'carol')).json()) as { token: number };
      await call('change', 'carol', {
        Retrospective: 'from carol',
        'If-Match': String(grant.token),
      });
      const expired = await socket
        .next('released', 15_000)
        .then(() => socket.next('released', 15_000))
        .then(() => socket.next('released', 15_000));
      expect(expired).toMatchObject({
        reason: 'expired',
        content: 'from carol',
        lastEditor: 'carol',
        token: grant.token,
      });

      // The old holder is fenced: not held (409), then stale after a new grant (412); nothing written.
      expect(
        (await call('change', 'carol', { Retrospective: 'late', 'If-Match': String(grant.token) }))
          .status,
      ).toBe(409);
      expect((await call('avail', 'carol')).status).toBe(200);
      const stale = await call('change', 'carol', {
        Retrospective: 'late',
        'If-Match': String(grant.token),
      });
      expect(stale.status).toBe(412);
      const check = (await (
        await fetch(`${api.url}/retrospective/check`, { headers: { Accept: 'application/json' } })
      ).json()) as { content: string };
      expect(check.content).toBe('from carol');
      expect((await call('release', 'carol')).status).toBe(200);

      // Metrics match the workload exactly: 4 finished holds, 2 long, 1 expired.
      const sample = (name: string) => metric(controller.url, `${name}{lock="retrospective"}`);
      await expect
        .poll(() => sample('retrospective_lock_hold_duration_seconds_count'), { timeout: 10_000 })
        .toBe(4);
      expect(await sample('retrospective_lock_long_holds_total')).toBe(2);
      expect(await sample('retrospective_lock_expirations_total')).toBe(1);
      expect(await sample('retrospective_lock_held')).toBe(0);

      // Events on the Lease (the controller records a hold's metrics before its Event).
      const reasons = async () => (await leaseEvents(namespace)).sort();
      await expect
        .poll(reasons, { timeout: 10_000 })
        .toEqual(
          [
            'Acquired',
            'Acquired',
            'Acquired',
            'Acquired',
            'HoldExpired',
            'HeldTooLong',
            'HeldTooLong',
            'Released',
            'Released',
            'Released',
          ].sort(),
        );

      // History: the last N releases, in order (once the api-server's watch has the last one).
      const history = async () =>
        (
          (await (
            await fetch(`${api.url}/locks/retrospective/history`, {
              headers: { Accept: 'application/json' },
            })
          ).json()) as {
            releases: { reason: string; releasedBy: string; content: string }[];
          }
        ).releases;
      await expect
        .poll(async () => (await history()).map((r) => [r.releasedBy, r.reason, r.content]), {
          timeout: 10_000,
        })
        .toEqual([
          ['bob', 'released', 'from bob'],
          ['retrospective-controller', 'expired', 'from carol'],
          ['carol', 'released', 'from carol'],
        ]);
      socket.close();
    },
  );
});
