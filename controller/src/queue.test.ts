import { describe, expect, it } from 'vitest';
import { WorkQueue, type SyncResult } from './queue.js';

const conflict = Object.assign(new Error('conflict'), { code: 409 });

function harness(reconcile: (key: string) => Promise<{ requeueAfterMs?: number } | undefined>) {
  const syncs: { key: string; result: SyncResult; at: number }[] = [];
  const started = performance.now();
  const queue = new WorkQueue({
    reconcile,
    isConflict: (e) => e === conflict,
    onSync: (key, result) => syncs.push({ key, result, at: performance.now() - started }),
    baseDelayMs: 10,
    maxDelayMs: 40,
  });
  queue.start();
  return { queue, syncs };
}

describe('the work queue', () => {
  it('collapses adds of a key that is queued or in flight', async () => {
    let calls = 0;
    let release: () => void = () => {};
    const { queue, syncs } = harness(async () => {
      calls++;
      if (calls === 1) await new Promise<void>((r) => (release = r));
      return undefined;
    });
    queue.add('a');
    await expect.poll(() => calls).toBe(1);
    queue.add('a');
    queue.add('a');
    release();
    await expect.poll(() => syncs.length).toBe(2);
    expect(calls).toBe(2);
    await queue.stop();
  });

  it('backs off exponentially per key on errors, capped, and forgets failures after a success', async () => {
    let calls = 0;
    const { queue, syncs } = harness(async () => {
      calls++;
      if (calls <= 4) throw new Error('boom');
      return undefined;
    });
    queue.add('a');
    await expect
      .poll(() => syncs.map((s) => s.result))
      .toEqual(['error', 'error', 'error', 'error', 'success']);
    const gaps = syncs.slice(1).map((s, i) => s.at - syncs[i]!.at);
    // 10, 20, 40, 40 (capped) ms between attempts, give or take the timer's lateness.
    expect(gaps[0]).toBeGreaterThanOrEqual(9);
    expect(gaps[1]).toBeGreaterThanOrEqual(19);
    expect(gaps[2]).toBeGreaterThanOrEqual(39);
    expect(gaps[3]).toBeGreaterThanOrEqual(39);
    await queue.stop();
  });

  it('requeues a conflict at once without counting an error', async () => {
    let calls = 0;
    const { queue, syncs } = harness(async () => {
      if (++calls === 1) throw conflict;
      return undefined;
    });
    queue.add('a');
    await expect.poll(() => syncs.map((s) => s.result)).toEqual(['conflict', 'success']);
    await queue.stop();
  });

  it('honours requeueAfter and stops taking work when stopped', async () => {
    let calls = 0;
    const { queue } = harness(async () => {
      calls++;
      return { requeueAfterMs: 20 };
    });
    queue.add('a');
    await expect.poll(() => calls).toBeGreaterThanOrEqual(3);
    await queue.stop();
    const after = calls;
    await new Promise((r) => setTimeout(r, 60));
    expect(calls).toBe(after);
  });

  it('lets an earlier delay win over a pending later one, as a short backoff after a long requeue', async () => {
    let calls = 0;
    const { queue, syncs } = harness(async () => {
      calls++;
      return undefined;
    });
    queue.addAfter('a', 60_000);
    queue.addAfter('a', 20);
    queue.addAfter('a', 30_000);
    await expect.poll(() => calls, { timeout: 2000 }).toBe(1);
    expect(syncs[0]!.at).toBeLessThan(1000);
    await queue.stop();
  });
});
