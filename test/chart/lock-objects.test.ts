import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusOf } from '../../runtime/src/kube/client.ts';
import { lockObject } from '../../runtime/src/kube/lock-resource.ts';
import { runChartProcesses, type ChartProcesses } from '../support/chart-processes.ts';
import { chartPath, helm } from '../support/helm.ts';
import {
  cluster,
  createNamespace,
  kubectl,
  leaseEvents,
  lockObjectEvents,
} from '../support/kube.ts';
import { applyYaml, installLockCrd, lockYaml } from '../support/locks.ts';

/**
 * The chart with `lockSource=resources`, its processes running out of cluster on tokens of the
 * chart's own ServiceAccounts and env: an install upgraded from the `LOCKS` list keeps its hold,
 * content, token and history; the chart's Lock and a team's own are served; and each process is
 * refused what its Role does not give.
 */
const release = 'locks';
const base = {
  'controller.leaderElection.leaseDurationSeconds': '4',
  'controller.leaderElection.renewDeadlineSeconds': '3',
  'controller.leaderElection.retryPeriodSeconds': '1',
};
const resources = { ...base, lockSource: 'resources' };

describe('the chart with Lock objects', () => {
  let namespace: string;
  let running: ChartProcesses | undefined;

  const call = (verb: string, path: string, user?: string, headers: Record<string, string> = {}) =>
    fetch(`${running!.api.url}${path}`, {
      method: verb,
      headers: { Accept: 'application/json', ...(user ? { Username: user } : {}), ...headers },
    });
  const check = async (lock = 'retrospective') =>
    (await (await call('GET', `/locks/${lock}/check`)).json()) as {
      holder?: string;
      token: number;
      content: string;
    };
  const helmRun = async (verb: 'install' | 'upgrade', values: Record<string, string>) => {
    const flags = Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
    const result = await helm(
      [verb, release, chartPath, '-n', namespace, ...flags],
      cluster().kubeconfig,
    );
    expect(result.code, result.stderr).toBe(0);
  };

  beforeAll(async () => {
    // As on a cluster upgraded from a chart without it: `kubectl apply -f crds/` first.
    await installLockCrd();
    namespace = await createNamespace('chartlocks');
  });
  afterAll(async () => running?.stop());

  it('upgraded from the LOCKS list, keeps the hold, content, token and history, now on a Lock', async () => {
    await helmRun('install', base);
    running = await runChartProcesses(namespace, release, base);
    await expect
      .poll(async () => (await call('GET', '/retrospective/check')).status, { timeout: 20_000 })
      .toBe(200);
    expect((await call('GET', '/retrospective/avail', 'ana')).status).toBe(200);
    expect(
      (await call('POST', '/retrospective/change', 'ana', { Retrospective: 'v1' })).status,
    ).toBe(200);
    expect((await call('POST', '/retrospective/release', 'ana')).status).toBe(200);
    expect((await call('GET', '/retrospective/avail', 'bob')).status).toBe(200);
    expect(
      (await call('POST', '/retrospective/change', 'bob', { Retrospective: 'v2' })).status,
    ).toBe(200);
    const before = await check();
    await expect
      .poll(
        async () =>
          (
            (await (await call('GET', '/locks/retrospective/history')).json()) as {
              releases: unknown[];
            }
          ).releases.length,
        { timeout: 10_000 },
      )
      .toBe(1);

    await running.stop();
    running = undefined;
    await helmRun('upgrade', resources);
    running = await runChartProcesses(namespace, release, resources);
    await expect
      .poll(async () => (await call('GET', '/retrospective/check')).status, { timeout: 20_000 })
      .toBe(200);
    expect(await check()).toMatchObject({ holder: 'bob', token: before.token, content: 'v2' });
    // The new replica's history cache fills from its watch shortly after it serves check.
    const releases = async () =>
      (
        (await (await call('GET', '/locks/retrospective/history')).json()) as {
          releases: { releasedBy: string; content: string }[];
        }
      ).releases;
    await expect
      .poll(releases, { timeout: 10_000 })
      .toMatchObject([{ releasedBy: 'ana', content: 'v1' }]);
    // The Lease is now the Lock's, and the Lock shows the hold.
    const lock = lockObject.parse(
      JSON.parse(
        (await kubectl('get', 'lock', 'retrospective', '-n', namespace, '-o', 'json')).stdout,
      ),
    );
    await expect
      .poll(
        async () => {
          const lease = await running!.creds.controller
            .makeApiClient(CoordinationV1Api)
            .readNamespacedLease({ name: 'retrospective', namespace });
          return lease.metadata?.ownerReferences?.map((r) => r.uid);
        },
        { timeout: 10_000 },
      )
      .toEqual([lock.metadata.uid]);
    await expect
      .poll(async () => (await kubectl('get', 'locks', '-n', namespace)).stdout, {
        timeout: 10_000,
      })
      .toMatch(new RegExp(`retrospective\\s+bob\\s+\\S+\\s+${before.token}\\s`));
    expect(
      (await call('POST', '/retrospective/release', 'bob', { 'If-Match': String(before.token) }))
        .status,
    ).toBe(200);
  });

  it("serves a team's own Lock, records its Events on it, and names it in status", async () => {
    expect((await applyYaml(namespace, lockYaml('team-a', '  heldTooLongSeconds: 1'))).code).toBe(
      0,
    );
    await expect
      .poll(async () => (await call('GET', '/locks/team-a/check')).status, { timeout: 10_000 })
      .toBe(200);
    expect((await call('GET', '/locks/team-a/avail', 'carol')).status).toBe(200);
    await expect
      .poll(() => leaseEvents(namespace, 'team-a'), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['Acquired', 'HeldTooLong']));
    expect(await lockObjectEvents(namespace, 'team-a')).not.toEqual([]);
    await expect
      .poll(
        async () =>
          (
            await kubectl(
              'get',
              'lock',
              'team-a',
              '-n',
              namespace,
              '-o',
              'jsonpath={.status.holder}',
            )
          ).stdout,
        { timeout: 10_000 },
      )
      .toBe('carol');
    expect((await call('POST', '/locks/team-a/release', 'carol')).status).toBe(200);
  });

  it('refuses each process what its Role does not give', async () => {
    const { api } = running!.creds;
    const leases = (kc: typeof api) => kc.makeApiClient(CoordinationV1Api);
    const status = (call: Promise<unknown>) =>
      call.then(
        () => 200,
        (error: unknown) => statusOf(error) ?? -1,
      );
    // The api-server never creates or deletes a Lease: the controller does.
    expect(
      await status(
        leases(api).createNamespacedLease({
          namespace,
          body: { metadata: { name: 'x' }, spec: {} },
        }),
      ),
    ).toBe(403);
    expect(await status(leases(api).deleteNamespacedLease({ name: 'team-a', namespace }))).toBe(
      403,
    );
    // Nor does it change Lock objects, and the controller only their status.
    const patchLock = async (creds: 'api' | 'controller') =>
      (
        await kubectl(
          'auth',
          'can-i',
          'patch',
          'locks.retrospective.dev',
          '-n',
          namespace,
          `--as=system:serviceaccount:${namespace}:${running!.names[creds]}`,
        )
      ).stdout.trim();
    expect(await patchLock('api')).toBe('no');
    expect(await patchLock('controller')).toBe('no');
    const secrets = await kubectl(
      'auth',
      'can-i',
      'get',
      'secrets',
      '-n',
      namespace,
      `--as=system:serviceaccount:${namespace}:${running!.names.controller}`,
    );
    expect(secrets.stdout.trim()).toBe('no');
  });
});
