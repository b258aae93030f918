import { randomBytes } from 'node:crypto';
import { LeaseStore } from '../runtime/src/kube/lease-store.ts';
import { lockStoreContract } from '../lock/src/testing/contract.ts';
import { adminConfig, createNamespace } from './support/kube.ts';

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
