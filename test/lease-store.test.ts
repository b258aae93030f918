import { randomBytes } from 'node:crypto';
import {
  CoordinationV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Lease,
} from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { validationOf } from '../runtime/src/kube/client.ts';
import { putLease } from '../runtime/src/kube/json-request.ts';
import { fromLease } from '../runtime/src/kube/lease-codec.ts';
import { LeaseStore } from '../runtime/src/kube/lease-store.ts';
import { lockStoreContract } from '../lock/src/testing/contract.ts';
import { adminConfig, createNamespace } from './support/kube.ts';

/** A watch event may take a while on a loaded machine (vi.waitFor's own default is 1 s). */
const watched = { timeout: 10_000 };

lockStoreContract('LeaseStore on a real kube-apiserver', async () => {
  const namespace = await createNamespace('contract');
  // Each lock has its own watch, chosen by name: name enough locks for every test up front.
  const locks = Array.from({ length: 32 }, () => `lock-${randomBytes(3).toString('hex')}`);
  const replica = () => new LeaseStore({ kubeConfig: adminConfig(), namespace, locks });
  const [replicaA, replicaB] = [replica(), replica()];
  await Promise.all([replicaA.start(), replicaB.start()]);
  return {
    replicaA,
    replicaB,
    newLock: async () => {
      const name = locks.shift();
      if (!name) throw new Error('the contract has more tests than names were made for');
      await replicaA.ensure([name]);
      return name;
    },
    close: async () => {
      await Promise.all([replicaA.close(), replicaB.close()]);
    },
  };
});

/** Grants the lock to ana with `token`, built on what `store`'s cache holds; throws on a conflict. */
async function grantToAna(store: LeaseStore, name: string, token: number) {
  const base = store.cached(name);
  if (!base) throw new Error('no Lease');
  const now = new Date();
  const next = { ...base.state, holder: 'ana', token, acquiredAt: now, renewedAt: now };
  const written = await store.replace(next, base);
  if (written === 'conflict') throw new Error('a conflict with nobody else writing');
  return written;
}

describe('LeaseStore', () => {
  it('takes its own write back from the watch without decoding it again', async () => {
    const namespace = await createNamespace('own-write');
    const name = `lock-${randomBytes(3).toString('hex')}`;
    const store = new LeaseStore({ kubeConfig: adminConfig(), namespace, locks: [name] });
    await store.start();
    try {
      await store.ensure([name]);
      await vi.waitFor(() => expect(store.cached(name)).toBeDefined(), watched);
      // Whichever comes first, the update's answer or the watch: when the answer does, the cache
      // is that answer until the watch brings the write, then the watch's object with the state
      // decoded from the answer (the very same object, not a second decoding).
      let answerFirst = 0;
      for (let token = 1; token <= 20 && answerFirst < 3; token++) {
        const written = await grantToAna(store, name, token);
        if (store.cached(name)?.raw !== written.raw) continue; // the watch was first
        answerFirst++;
        await vi.waitFor(() => expect(store.cached(name)?.raw).not.toBe(written.raw), watched);
        const seen = store.cached(name);
        expect(seen?.version).toBe(written.version);
        expect(seen?.state).toBe(written.state);
        expect(seen?.state).toMatchObject({ holder: 'ana', token });
      }
      expect(answerFirst).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });

  it("clears the Lease's managedFields on a write, so kube-apiserver tracks none on updates", async () => {
    const namespace = await createNamespace('managed-fields');
    const name = `lock-${randomBytes(3).toString('hex')}`;
    const store = new LeaseStore({ kubeConfig: adminConfig(), namespace, locks: [name] });
    const api = adminConfig().makeApiClient(CoordinationV1Api);
    const managers = async () =>
      ((await api.readNamespacedLease({ name, namespace })).metadata?.managedFields ?? []).map(
        (entry) => entry.manager,
      );
    await store.start();
    try {
      await store.ensure([name]);
      // A create is tracked (kube-apiserver always does), the first update clears it, and later
      // updates leave nothing behind either.
      expect(await managers()).not.toEqual([]);
      for (const token of [1, 2]) {
        await vi.waitFor(() => expect(store.cached(name)?.state.token).toBe(token - 1), watched);
        await grantToAna(store, name, token);
        expect(await managers()).toEqual([]);
      }
      const lease = await api.readNamespacedLease({ name, namespace });
      expect(lease.spec).toMatchObject({ holderIdentity: 'ana', leaseTransitions: 2 });
    } finally {
      await store.close();
    }
  });
  it('writes in protobuf what the JSON path wrote: what others put on the Lease survives, times to the microsecond', async () => {
    const namespace = await createNamespace('protobuf');
    const name = `lock-${randomBytes(3).toString('hex')}`;
    const store = new LeaseStore({ kubeConfig: adminConfig(), namespace, locks: [name] });
    const api = adminConfig().makeApiClient(CoordinationV1Api);
    await store.start();
    try {
      await store.ensure([name]);
      // Someone else's label, annotation, owner and finalizer, by a JSON merge patch.
      const theirs = {
        labels: { team: 'a' },
        annotations: { 'example.com/note': 'keep 😀' },
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'u-1' }],
        finalizers: ['example.com/keep'],
      };
      const patched = await api.patchNamespacedLease(
        { name, namespace, body: { metadata: theirs } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await vi.waitFor(
        () => expect(store.cached(name)?.version).toBe(patched.metadata?.resourceVersion),
        watched,
      );
      const written = await grantToAna(store, name, 1);
      const lease = await api.readNamespacedLease({ name, namespace });
      expect(lease.metadata).toMatchObject(theirs);
      expect(lease.metadata?.resourceVersion).toBe(written.version);
      expect(lease.spec?.holderIdentity).toBe('ana');
      // What the write answered (decoded from protobuf) is what a read in JSON gives.
      expect(written.state).toEqual(fromLease(lease).state);
      await api.patchNamespacedLease(
        { name, namespace, body: { metadata: { finalizers: null } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } finally {
      await store.close();
    }
  });

  it("reads the fields a 422 names in kube-apiserver's protobuf answer (too large, or invalid)", async () => {
    const namespace = await createNamespace('invalid');
    const name = `lock-${randomBytes(3).toString('hex')}`;
    const api = adminConfig().makeApiClient(CoordinationV1Api);
    const created = await api.createNamespacedLease({
      namespace,
      body: { metadata: { name }, spec: { leaseDurationSeconds: 15 } },
    });
    const path = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`;
    const refusal = async (lease: V1Lease) => {
      try {
        await putLease(adminConfig(), path, lease, AbortSignal.timeout(10_000));
      } catch (error) {
        return validationOf(error);
      }
      throw new Error('kube-apiserver took it');
    };
    const tooLarge = await refusal({
      ...created,
      metadata: { ...created.metadata, annotations: { 'example.com/big': 'x'.repeat(262_144) } },
    });
    expect(tooLarge.fields).toEqual(['metadata.annotations']);
    const invalid = await refusal({ ...created, spec: { leaseDurationSeconds: -1 } });
    expect(invalid.fields).toEqual(['spec.leaseDurationSeconds']);
    expect(invalid.message).toMatch(/leaseDurationSeconds/);
  });
});
