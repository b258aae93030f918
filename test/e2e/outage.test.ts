import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  clusterDown,
  clusterUp,
  startApiserver,
  stopApiserver,
  type ClusterState,
} from '../../hack/cluster/cluster.ts';
import { startApiServer, type Service } from '../support/processes.ts';

/** This test stops kube-apiserver, so it runs on a control plane of its own. */
const dir = inject('scratchDir');
const user = (name: string) => ({ headers: { Username: name, Accept: 'application/json' } });

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
    'answers 503 to mutations, fails /readyz, and recovers after a restart without a process restart',
    { timeout: 180_000 },
    async () => {
      const pid = api.child.pid;
      expect((await fetch(`${api.url}/retrospective/avail`, user('ana'))).status).toBe(200);

      await stopApiserver(state);
      await expect
        .poll(async () => (await fetch(`${api.url}/readyz`)).status, { timeout: 15_000 })
        .toBe(503);
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
      await expect
        .poll(async () => (await fetch(`${api.url}/readyz`)).status, { timeout: 30_000 })
        .toBe(200);
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
      expect(api.child.exitCode).toBeNull();
      const metrics = await (await fetch(`${api.url}/metrics`)).text();
      expect(metrics).toMatch(/retrospective_watch_restarts_total\{reason="error"\} [1-9]/);
      expect(metrics).toMatch(/retrospective_kube_requests_total\{verb="get",code="error"\} [1-9]/);
    },
  );
});
