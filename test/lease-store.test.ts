import { randomBytes } from 'node:crypto';
import { LeaseStore } from '../lock/src/lease-store.ts';
import { lockStoreContract } from '../lock/src/testing/contract.ts';
import { adminConfig, createNamespace } from './support/kube.ts';

lockStoreContract('LeaseStore on a real kube-apiserver', async () => {
  const namespace = await createNamespace('contract');
  const replica = () => new LeaseStore({ kubeConfig: adminConfig(), namespace });
  const [replicaA, replicaB] = [replica(), replica()];
  await Promise.all([replicaA.start(), replicaB.start()]);
  return {
    replicaA,
    replicaB,
    newLock: async () => {
      const name = `lock-${randomBytes(3).toString('hex')}`;
      await replicaA.ensure([name]);
      return name;
    },
    close: async () => {
      await Promise.all([replicaA.close(), replicaB.close()]);
    },
  };
});
