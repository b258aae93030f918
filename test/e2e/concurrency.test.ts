import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { checkHistory, type ReleaseFrame } from '../support/history.ts';
import { raceForTheLock, raceGrants, summary } from '../support/workload.ts';
import { cluster, createNamespace, kubectl } from '../support/kube.ts';
import { startApiServer, type Service } from '../support/processes.ts';

const clients = 50;

// About 15 s alone, up to 40 s beside other files: 100 grants among 50 racing clients is the
// bound that still catches a check-then-act gap (test/e2e/race-checker.test.ts).
describe('two api-server replicas on the Lease backend', () => {
  let namespace: string;
  let replicas: Service[];

  beforeAll(async () => {
    namespace = await createNamespace('race');
    replicas = await Promise.all([0, 1].map(() => startApiServer(cluster().kubeconfig, namespace)));
  });
  afterAll(async () => Promise.all(replicas.map((r) => r.stop())));

  it('shows the holder and content on the Lease while held', async () => {
    const [a] = replicas as [Service];
    const headers = { Username: 'ana' };
    expect((await fetch(`${a.url}/retrospective/avail`, { headers })).status).toBe(200);
    await fetch(`${a.url}/retrospective/change`, {
      method: 'POST',
      headers: { ...headers, Retrospective: 'visible' },
    });
    const { stdout } = await kubectl(
      'get',
      'lease',
      'retrospective',
      '-n',
      namespace,
      '-o',
      'yaml',
    );
    expect(stdout).toMatch(/holderIdentity: ana/);
    expect(stdout).toMatch(/retrospective\.dev\/content: visible/);
    expect(stdout).toMatch(/renewTime: "?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/);
    expect(
      (await fetch(`${a.url}/retrospective/release`, { method: 'POST', headers })).status,
    ).toBe(200);
  });

  it(
    `keeps one holder at a time and loses no edit under ${clients} racing clients`,
    { timeout: 120_000 },
    async () => {
      const sockets = await Promise.all(replicas.map((r) => openSocket(r.url)));
      const pick = () => replicas[Math.floor(Math.random() * replicas.length)]!.url;
      const workload = await raceForTheLock({
        clients,
        durationMs: 60_000,
        grants: raceGrants,
        url: pick,
      });
      const { ops } = workload;
      console.info(summary(workload));

      const grants = ops.filter((o) => o.kind === 'avail' && o.outcome === 'granted');
      const releases = ops.filter((o) => o.kind === 'release' && o.status === 200);
      const waits = ops.filter((o) => o.status === 423);
      expect(workload.failed).toEqual([]);
      // A sanity floor far below what a loaded 2-core machine does (about 40): the checker is the test.
      expect(grants.length).toBeGreaterThanOrEqual(10);
      expect(waits.length).toBeGreaterThan(grants.length);

      // Every replica hears every release, with the holder's last content.
      const lastToken = Math.max(...releases.map((r) => r.token ?? 0));
      for (const socket of sockets) {
        await expect
          .poll(() => socket.frames.some((f) => f.type === 'released' && f.token === lastToken), {
            timeout: 5000,
          })
          .toBe(true);
      }
      const frames = sockets.flatMap((s) =>
        s.frames.filter((f) => f.type === 'released'),
      ) as unknown as ReleaseFrame[];
      for (const socket of sockets) {
        const seen = new Set(
          socket.frames.filter((f) => f.type === 'released').map((f) => f.token),
        );
        expect(releases.filter((r) => !seen.has(r.token))).toEqual([]);
      }
      expect(checkHistory(ops, frames)).toEqual([]);

      const races = await Promise.all(
        replicas.map(async (r) => {
          const text = await (await fetch(`${r.metricsUrl}/metrics`)).text();
          return [...text.matchAll(/^retrospective_lock_races_total\{[^}]*\} (\d+)/gm)].reduce(
            (n, m) => n + Number(m[1]),
            0,
          );
        }),
      );
      console.info(`races counted per replica: ${races.join(', ')}`);
      expect(races.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      sockets.forEach((s) => s.close());
    },
  );
});
