import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  V1MicroTime,
} from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { clusterUp } from '../hack/cluster/cluster.ts';
import {
  adminConfig,
  cluster,
  createNamespace,
  kubectl,
  serviceAccountConfig,
} from './support/kube.ts';

const lease = (name: string, holder: string) => ({
  metadata: { name },
  spec: { holderIdentity: holder, leaseTransitions: 1 },
});

describe('the local Kubernetes control plane', () => {
  let namespace: string;
  let leases: CoordinationV1Api;

  beforeAll(async () => {
    namespace = await createNamespace('k8s');
    leases = adminConfig().makeApiClient(CoordinationV1Api);
  });

  it('answers 409 Conflict to a replace carrying a stale resourceVersion', async () => {
    const created = await leases.createNamespacedLease({ namespace, body: lease('cas', 'ana') });
    const stale = created.metadata!.resourceVersion!;
    await leases.replaceNamespacedLease({
      name: 'cas',
      namespace,
      body: { ...created, spec: { holderIdentity: 'bob' } },
    });

    const error = await leases
      .replaceNamespacedLease({
        name: 'cas',
        namespace,
        body: { ...created, metadata: { ...created.metadata, resourceVersion: stale } },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    expect(error).toBeInstanceOf(ApiException);
    expect((error as ApiException<string>).code).toBe(409);
    expect(JSON.parse((error as ApiException<string>).body)).toMatchObject({ reason: 'Conflict' });
    const stored = await leases.readNamespacedLease({ name: 'cas', namespace });
    expect(stored.spec?.holderIdentity).toBe('bob');
  });

  it('stores a renewTime with six fractional digits and reads it back', async () => {
    const renewTime = new V1MicroTime('2026-11-23T10:20:30.123456Z');
    await leases.createNamespacedLease({
      namespace,
      body: { metadata: { name: 'micro' }, spec: { renewTime, acquireTime: renewTime } },
    });

    const stored = await leases.readNamespacedLease({ name: 'micro', namespace });

    expect(String(stored.spec?.renewTime)).toMatch(/^2026-11-23T10:20:30\.123\d{3}Z$/);
    expect(new Date(stored.spec!.renewTime!).getTime()).toBe(renewTime.getTime());
  });

  it('rejects a renewTime serialised as a plain Date (three fractional digits)', async () => {
    const error = await leases
      .createNamespacedLease({
        namespace,
        body: { metadata: { name: 'millis' }, spec: { renewTime: new Date() } },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // A plain Date serialises as .sssZ, which the apiserver refuses to parse as MicroTime.
    expect((error as ApiException<string>).code).toBe(400);
  });

  it('is left alone by a second cluster-up on the same directory', async () => {
    const before = cluster();
    const again = await clusterUp(before.dir);
    expect(again).toMatchObject({
      etcdPid: before.etcdPid,
      apiserverPid: before.apiserverPid,
      server: before.server,
    });
  });

  it('lists the Leases with bin/kubectl get lease -A', async () => {
    await leases.createNamespacedLease({ namespace, body: lease('listed', 'carol') });

    const { code, stdout } = await kubectl('get', 'lease', '-A');

    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`${namespace}\\s+listed\\s+carol`));
  });

  it('enforces RBAC: a service account without a Role is denied, and allowed once bound', async () => {
    const core = adminConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: 'reader' } },
    });
    const asReader = (await serviceAccountConfig(namespace, 'reader')).makeApiClient(
      CoordinationV1Api,
    );

    const denied = await asReader.listNamespacedLease({ namespace }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((denied as ApiException<string>).code).toBe(403);

    const rbac = adminConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'lease-reader' },
        rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'lease-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lease-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
      },
    });
    await expect
      .poll(() =>
        asReader.listNamespacedLease({ namespace }).then(
          () => 'allowed',
          () => 'denied',
        ),
      )
      .toBe('allowed');
    const write = await asReader
      .createNamespacedLease({ namespace, body: lease('nope', 'x') })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((write as ApiException<string>).code).toBe(403);
  });
});
