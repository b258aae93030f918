import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cluster, createNamespace, kubectl } from '../support/kube.ts';
import { startApiServer, startController, type Service } from '../support/processes.ts';

/** Fencing tokens only grow for a lock name, also when its Lease is deleted and created again. */
describe('a lock whose Lease is deleted and created again', () => {
  let namespace: string;
  let api: Service;
  let controller: Service;

  beforeAll(async () => {
    namespace = await createNamespace('fencing');
    controller = await startController(cluster().kubeconfig, namespace);
    api = await startApiServer(cluster().kubeconfig, namespace);
  });
  afterAll(async () => {
    await api.stop();
    await controller.stop();
  });

  const call = async (verb: string, user: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${api.url}/retrospective/${verb}`, {
      method: verb === 'avail' || verb === 'check' ? 'GET' : 'POST',
      headers: { Username: user, Accept: 'application/json', ...headers },
    });
    return { status: res.status, body: (await res.json()) as { token?: number } };
  };

  it('hands out only higher tokens afterwards, so an old If-Match never matches a new hold', async () => {
    await expect.poll(async () => (await call('check', 'x')).status, { timeout: 15_000 }).toBe(200);
    for (const user of ['a', 'b', 'c']) {
      expect((await call('avail', user)).status).toBe(200);
      expect((await call('release', user)).status).toBe(200);
    }
    const held = await call('avail', 'ana');
    expect(held.body.token).toBe(4);

    const deleted = await kubectl('delete', 'lease', 'retrospective', '-n', namespace);
    expect(deleted.code, deleted.stderr).toBe(0);
    // The controller creates it again; the api-server's watch sees it come back.
    await expect
      .poll(async () => (await call('avail', 'ana')).body.token, { timeout: 20_000, interval: 200 })
      .toBeGreaterThan(4);
    const stale = await call('change', 'ana', {
      'If-Match': '4',
      Retrospective: 'from the old hold',
    });
    expect(stale.status).toBe(412);
    const annotation = await kubectl(
      'get',
      'configmap',
      'retrospective-history',
      '-n',
      namespace,
      '-o',
      'jsonpath={.metadata.annotations.retrospective\\.dev/token-floor}',
    );
    expect(Number(annotation.stdout)).toBeGreaterThanOrEqual(4);
  });
});
