import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  clusterDown,
  clusterUp,
  startApiserver,
  stopApiserver,
  type ClusterState,
} from '../../hack/cluster/cluster.ts';
import { startApiServer, type Service } from '../support/processes.ts';

/**
 * This test stops kube-apiserver, so it runs on a control plane of its own, in a folder of its own
 * within the run's scratch folder (other files write there at the same time).
 */
const dir = join(inject('scratchDir'), 'outage-control-plane');
const user = (name: string) => ({ headers: { Username: name, Accept: 'application/json' } });
const watchConnected = async (api: Service) =>
  /^retrospective_watch_connected (\d)$/m.exec(
    await (await fetch(`${api.metricsUrl}/metrics`)).text(),
  )?.[1];

describe('when the Kubernetes API goes away', () => {
  let state: ClusterState;
  let api: Service;

  beforeAll(async () => {
    state = await clusterUp(dir);
    api = await startApiServer(state.kubeconfig, 'default');
  });
  afterAll(async () => {
    await api.stop();
    await clusterDown(dir);
  });

  it(
    'answers 503 to mutations, stays ready to serve check from its cache, and recovers without a restart',
    { timeout: 180_000 },
    async () => {
      const pid = api.child.pid;
      expect((await fetch(`${api.url}/retrospective/avail`, user('ana'))).status).toBe(200);

      await stopApiserver(state);
      // Every replica loses its watch at once in an outage: readiness must not pull them all
      // out of the Service. The watch's health is a metric (and an alert), not a probe.
      await expect.poll(() => watchConnected(api), { timeout: 15_000 }).toBe('0');
      expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${api.url}/retrospective/check`, user('x'))).json()).toMatchObject(
        { holder: 'ana' },
      );
      for (const [path, name, init] of [
        ['avail', 'bob', {}],
        [
          'change',
          'ana',
          { method: 'POST', body: 'offline edit', headers: { 'Content-Type': 'text/plain' } },
        ],
        ['release', 'ana', { method: 'POST' }],
      ] as const) {
        const res = await fetch(`${api.url}/retrospective/${path}`, {
          ...user(name),
          ...init,
          headers: { ...user(name).headers, ...('headers' in init ? init.headers : {}) },
        });
        expect(res.status, path).toBe(503);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(await res.json()).toMatchObject({ error: 'store_unavailable' });
      }

      await startApiserver(state);
      await expect.poll(() => watchConnected(api), { timeout: 30_000 }).toBe('1');
      const check = (await (
        await fetch(`${api.url}/retrospective/check`, user('x'))
      ).json()) as Record<string, unknown>;
      expect(check).toMatchObject({ holder: 'ana', content: '' });
      expect(
        (await fetch(`${api.url}/retrospective/release`, { ...user('ana'), method: 'POST' }))
          .status,
      ).toBe(200);
      expect((await fetch(`${api.url}/retrospective/avail`, user('bob'))).status).toBe(200);
      expect(api.child.pid).toBe(pid);
      expect([api.child.exitCode, api.child.signalCode]).toEqual([null, null]);
      const metrics = await (await fetch(`${api.metricsUrl}/metrics`)).text();
      expect(metrics).toMatch(/retrospective_watch_restarts_total\{reason="error"\} [1-9]/);
      expect(metrics).toMatch(/retrospective_kube_requests_total\{verb="get",code="error"\} [1-9]/);
    },
  );
});
