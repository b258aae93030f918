import { describe, expect, it } from 'vitest';
import { WatchedHistory } from '../runtime/src/kube/history-configmap.ts';
import { adminConfig, createNamespace } from './support/kube.ts';

describe('the history a replica watches', () => {
  it('is unavailable until its ConfigMaps were first listed: never an empty history that is not so', async () => {
    const namespace = await createNamespace('history');
    const history = new WatchedHistory({
      kubeConfig: adminConfig(),
      namespace,
      locks: ['retrospective'],
    });
    const before = (() => {
      try {
        return history.list('retrospective');
      } catch (error) {
        return error;
      }
    })();
    expect(before).toMatchObject({ name: 'StoreUnavailableError' });
    expect(String(before)).toMatch(/not loaded yet/);
    await history.start();
    try {
      expect(history.list('retrospective')).toEqual([]);
    } finally {
      await history.stop();
    }
  });
});
