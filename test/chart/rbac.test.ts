import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusOf } from '../../runtime/src/kube/client.ts';
import { installAndRun } from '../support/chart-processes.ts';
import { adminConfig, createNamespace, leaseEvents } from '../support/kube.ts';
import type { Service } from '../support/processes.ts';

/**
 * The api-server and the controller run out of cluster on tokens of the chart's own
 * ServiceAccounts, configured by the chart's own env: so the chart's RBAC is what is tested.
 */
const values = {
  'lock.holdTimeoutSeconds': '3',
  'lock.heldTooLongSeconds': '2',
  'controller.leaderElection.leaseDurationSeconds': '4',
  'controller.leaderElection.renewDeadlineSeconds': '3',
  'controller.leaderElection.retryPeriodSeconds': '1',
};
const release = 'rel';
const names = {
  api: `${release}-retrospective-api-server`,
  controller: `${release}-retrospective-controller`,
};

/** The status an API call got: 200 when it succeeded. */
const status = (call: Promise<unknown>) =>
  call.then(
    () => 200,
    (error: unknown) => statusOf(error) ?? -1,
  );

describe('the chart ServiceAccounts are sufficient and least-privilege', () => {
  let namespace: string;
  let other: string;
  let creds: Record<'api' | 'controller', KubeConfig>;
  let api: Service;
  let controller: Service;

  beforeAll(async () => {
    namespace = await createNamespace('rbac');
    other = await createNamespace('rbac-other');
    ({ api, controller, creds } = await installAndRun(namespace, release, values));
    // An unrelated Lease in the same namespace, and a Secret: neither process may touch them.
    const admin = adminConfig().makeApiClient(CoordinationV1Api);
    await admin.createNamespacedLease({
      namespace,
      body: { metadata: { name: 'other' }, spec: {} },
    });
    await adminConfig()
      .makeApiClient(CoreV1Api)
      .createNamespacedSecret({
        namespace,
        body: { metadata: { name: 'secret' }, stringData: { password: 'x' } },
      });
  });
  afterAll(async () => {
    await api.stop();
    await controller.stop();
  });

  const call = (verb: string, path: string, user?: string, body?: string) =>
    fetch(`${api.url}${path}`, {
      method: verb,
      headers: {
        Accept: 'application/json',
        ...(user ? { Username: user } : {}),
        ...(body ? { Retrospective: body } : {}),
      },
    });

  it('run the seed workflow with expiry, Events and history', { timeout: 60_000 }, async () => {
    // The controller provisions the Lease (the api-server may not create one: see below).
    await expect
      .poll(async () => (await call('GET', '/retrospective/check')).status, { timeout: 20_000 })
      .toBe(200);

    expect((await call('GET', '/retrospective/avail', 'ana')).status).toBe(200);
    expect((await call('GET', '/retrospective/avail', 'bob')).status).toBe(423);
    expect((await call('POST', '/retrospective/change', 'ana', 'notes by ana')).status).toBe(200);
    expect((await call('POST', '/retrospective/release', 'ana')).status).toBe(200);

    expect((await call('GET', '/retrospective/avail', 'carol')).status).toBe(200);
    await expect
      .poll(
        async () =>
          ((await (await call('GET', '/retrospective/check')).json()) as { releaseReason?: string })
            .releaseReason,
        { timeout: 15_000 },
      )
      .toBe('expired');

    await expect
      .poll(() => leaseEvents(namespace), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['Acquired', 'Released', 'HoldExpired', 'HeldTooLong']));

    await expect
      .poll(
        async () =>
          (
            (await (await call('GET', '/locks/retrospective/history')).json()) as {
              releases: { reason: string; content: string }[];
            }
          ).releases,
        { timeout: 10_000 },
      )
      .toMatchObject([
        { reason: 'released', content: 'notes by ana' },
        { reason: 'expired', content: 'notes by ana' },
      ]);
  });

  it('deny the api-server everything outside its Role', async () => {
    const leases = creds.api.makeApiClient(CoordinationV1Api);
    const core = creds.api.makeApiClient(CoreV1Api);
    // What it needs is allowed (a control for the denials below).
    expect(await status(leases.readNamespacedLease({ name: 'retrospective', namespace }))).toBe(
      200,
    );
    expect(await status(leases.readNamespacedLease({ name: 'other', namespace }))).toBe(403);
    const lease = await adminConfig()
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'other', namespace });
    expect(
      await status(leases.replaceNamespacedLease({ name: 'other', namespace, body: lease })),
    ).toBe(403);
    expect(
      await status(
        leases.createNamespacedLease({ namespace, body: { metadata: { name: 'mine' }, spec: {} } }),
      ),
    ).toBe(403);
    expect(await status(leases.deleteNamespacedLease({ name: 'retrospective', namespace }))).toBe(
      403,
    );
    expect(await status(leases.listNamespacedLease({ namespace }))).toBe(403);
    expect(await status(core.readNamespacedSecret({ name: 'secret', namespace }))).toBe(403);
    expect(await status(core.listNamespacedConfigMap({ namespace }))).toBe(403);
    expect(
      await status(
        core.createNamespacedConfigMap({ namespace: other, body: { metadata: { name: 'x' } } }),
      ),
    ).toBe(403);
    expect(
      await status(leases.readNamespacedLease({ name: 'retrospective', namespace: other })),
    ).toBe(403);
  });

  it('deny the controller everything outside its Role', async () => {
    const leases = creds.controller.makeApiClient(CoordinationV1Api);
    const core = creds.controller.makeApiClient(CoreV1Api);
    expect(
      await status(leases.readNamespacedLease({ name: `${names.controller}-leader`, namespace })),
    ).toBe(200);
    const lease = await adminConfig()
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'other', namespace });
    expect(
      await status(leases.replaceNamespacedLease({ name: 'other', namespace, body: lease })),
    ).toBe(403);
    expect(await status(leases.deleteNamespacedLease({ name: 'retrospective', namespace }))).toBe(
      403,
    );
    expect(await status(leases.listNamespacedLease({ namespace }))).toBe(403);
    expect(await status(core.readNamespacedSecret({ name: 'secret', namespace }))).toBe(403);
    expect(
      await status(core.deleteNamespacedConfigMap({ name: 'retrospective-history', namespace })),
    ).toBe(403);
    expect(
      await status(
        core.createNamespacedConfigMap({ namespace: other, body: { metadata: { name: 'x' } } }),
      ),
    ).toBe(403);
    expect(
      await status(
        leases.createNamespacedLease({
          namespace: other,
          body: { metadata: { name: 'x' }, spec: {} },
        }),
      ),
    ).toBe(403);
    expect(
      await status(
        core.createNamespacedEvent({
          namespace: other,
          body: { metadata: { name: 'x' }, involvedObject: {} },
        }),
      ),
    ).toBe(403);
  });
});
