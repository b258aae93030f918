import { MemoryStore } from './memory-store.js';
import { lockStoreContract } from './testing/contract.js';

let counter = 0;

lockStoreContract('MemoryStore', async () => {
  const store = new MemoryStore();
  return {
    replicaA: store,
    replicaB: store,
    newLock: async () => {
      const name = `lock-${++counter}`;
      await store.ensure([name]);
      return name;
    },
    close: () => store.close(),
  };
});
