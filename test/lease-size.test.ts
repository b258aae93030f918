import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockService, LockTooLargeError, type Waiter } from '../lock/src/index.ts';
import { LeaseStore } from '../runtime/src/kube/lease-store.ts';
import { maxUserNameBytes } from '../api-server/src/auth/authorizer.ts';
import { leaseBudgetBytes, loadConfig, waiterEntryBytes } from '../api-server/src/config.ts';
import { adminConfig, createNamespace, kubectl } from './support/kube.ts';

/**
 * The worst case the configuration allows, written to a real kube-apiserver: the largest content,
 * a full line of the longest user names, the longest holder and releaser names. It must fit, and
 * the holder must be able to release; anything larger is refused before it is sent.
 */
// Both ways the line is written (ADR 16): `objects`, as versions before it wrote it, takes the
// most bytes per waiter.
describe.each(['objects', 'short'] as const)(
  "a full lock in its Lease, on the real API server's limits (line written as %s)",
  (lineForm) => {
    let namespace: string;
    let store: LeaseStore;
    let service: LockService;
    const lock = 'retrospective';

    beforeAll(async () => {
      namespace = await createNamespace('size');
      store = new LeaseStore({ kubeConfig: adminConfig(), namespace, locks: [lock], lineForm });
      await store.start();
      await store.ensure([lock]);
      service = new LockService({ store, locks: [lock] });
      for (let i = 0; i < 100 && !store.cached(lock); i++)
        await new Promise((r) => setTimeout(r, 50));
    });
    afterAll(async () => store.close());

    const name = (tag: string) => `${tag}-`.padEnd(maxUserNameBytes, 'x');

    it('fits the largest content with a full line of the longest names, and releases', async () => {
      // The largest line the largest content leaves room for, as configuration allows it.
      const contentBytes = 200 * 1024;
      const max = Math.floor((leaseBudgetBytes - 2048 - contentBytes) / waiterEntryBytes);
      const config = loadConfig({
        MAX_CONTENT_BYTES: String(contentBytes),
        WAIT_QUEUE_MAX: String(max),
      });
      const holder = name('holder');
      expect(await service.execute(lock, { kind: 'avail', user: holder })).toMatchObject({
        ok: true,
      });
      // Multi-byte text: the limit counts bytes.
      const content = 'é'.repeat(config.MAX_CONTENT_BYTES / 2);
      expect(await service.execute(lock, { kind: 'change', user: holder, content })).toMatchObject({
        ok: true,
      });
      const now = Date.now();
      const join: Waiter[] = Array.from({ length: config.WAIT_QUEUE_MAX }, (_, i) => ({
        id: crypto.randomUUID(),
        user: name(`w${i}`),
        since: new Date(now),
        expires: new Date(now + 3_600_000),
        ttlSeconds: 3600,
        beat: 9_999_999,
        holdTimeoutSeconds: 604_800,
        takesHandOver: true,
      }));
      const joined = await service.execute(lock, {
        kind: 'line',
        join,
        leave: [],
        max: config.WAIT_QUEUE_MAX,
        perUser: 1,
      });
      expect(joined).toMatchObject({ ok: true });
      expect(joined.ok && joined.state.queue).toHaveLength(config.WAIT_QUEUE_MAX);
      // The release hands the lock to the head of the line in the same write: the largest Lease.
      const released = await service.execute(lock, { kind: 'release', user: holder });
      expect(released).toMatchObject({
        ok: true,
        state: { releasedBy: holder, holder: name('w0') },
      });
      const lease = await kubectl('get', 'lease', lock, '-n', namespace, '-o', 'json');
      const annotations = (JSON.parse(lease.stdout) as { metadata: { annotations: object } })
        .metadata.annotations;
      const bytes = Object.entries(annotations).reduce(
        (sum, [k, v]) => sum + Buffer.byteLength(k) + Buffer.byteLength(String(v)),
        0,
      );
      // The line is in the form this store writes, and only there.
      const [written, other] =
        lineForm === 'objects'
          ? ['retrospective.dev/queue', 'retrospective.dev/line']
          : ['retrospective.dev/line', 'retrospective.dev/queue'];
      expect(annotations).toHaveProperty([written]);
      expect(annotations).not.toHaveProperty([other]);
      console.info(`worst-case Lease annotations (${lineForm}): ${bytes} bytes of ${256 * 1024}`);
      expect(bytes).toBeLessThanOrEqual(leaseBudgetBytes);
    });

    it('refuses a write over the limit before sending it, leaving the Lease as it was', async () => {
      const waiting = (await store.read(lock))?.state.queue ?? [];
      const leave = waiting.map((w) => w.id);
      await service.execute(lock, { kind: 'line', join: [], leave, max: 1, perUser: 1 });
      await service.execute(lock, { kind: 'force', by: 'admin' });
      const before = await store.read(lock);
      const holder = name('big');
      const held = await service.execute(lock, { kind: 'avail', user: holder });
      expect(held).toMatchObject({ ok: true });
      await expect(
        service.execute(lock, { kind: 'change', user: holder, content: 'x'.repeat(256 * 1024) }),
      ).rejects.toBeInstanceOf(LockTooLargeError);
      const after = await store.read(lock);
      expect(after?.state.content).toBe(before?.state.content);
      expect(await service.execute(lock, { kind: 'release', user: holder })).toMatchObject({
        ok: true,
      });
    });
  },
);
