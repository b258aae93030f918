import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cluster, createNamespace } from '../support/kube.ts';
import { metric, startApiServer, startController, type Service } from '../support/processes.ts';

/** Reads of the history cost the Kubernetes API nothing: they come from a watched cache. */
describe('/locks/<name>/history', () => {
  let api: Service;
  let controller: Service;

  beforeAll(async () => {
    const namespace = await createNamespace('history');
    controller = await startController(cluster().kubeconfig, namespace);
    api = await startApiServer(cluster().kubeconfig, namespace);
  });
  afterAll(async () => {
    await api.stop();
    await controller.stop();
  });

  it('serves every viewer from the watch, with no API call per request', async () => {
    const call = (verb: string) =>
      fetch(`${api.url}/retrospective/${verb}`, {
        method: verb === 'avail' ? 'GET' : 'POST',
        headers: { Username: 'ana' },
      });
    await expect.poll(async () => (await call('avail')).status, { timeout: 15_000 }).toBe(200);
    expect((await call('release')).status).toBe(200);
    const history = async () =>
      (
        (await (
          await fetch(`${api.url}/locks/retrospective/history`, {
            headers: { Accept: 'application/json' },
          })
        ).json()) as { releases: unknown[] }
      ).releases;
    await expect.poll(history, { timeout: 10_000 }).toHaveLength(1);

    const gets = () =>
      metric(api.metricsUrl, 'retrospective_kube_requests_total{verb="get",code="2xx"}');
    const before = (await gets()) ?? 0;
    for (let i = 0; i < 20; i++) expect(await history()).toHaveLength(1);
    expect((await gets()) ?? 0).toBe(before);
  });
});
