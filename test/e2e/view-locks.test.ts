import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cluster, createNamespace, kubectl } from '../support/kube.ts';
import { launchChromium } from '../support/browser.ts';
import { applyYaml, installLockCrd, lockYaml } from '../support/locks.ts';
import { startApiServer, startController, type Service } from '../support/processes.ts';

/**
 * The management view with declared locks, in headless Chromium: a Lock applied with kubectl
 * appears without a reload, the filter shows only the locks it matches, and a deleted Lock's card
 * goes.
 */
describe('the management view with Lock objects', () => {
  let browser: Browser;
  let namespace: string;
  const services: Service[] = [];

  beforeAll(async () => {
    await installLockCrd();
    namespace = await createNamespace('viewlocks');
    const env = { LOCK_SOURCE: 'resources' };
    for (const name of ['notes', 'standup'])
      expect((await applyYaml(namespace, lockYaml(name))).code).toBe(0);
    services.push(await startController(cluster().kubeconfig, namespace, env));
    services.push(await startApiServer(cluster().kubeconfig, namespace, env));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
    await Promise.all(services.map((s) => s.stop()));
  });

  it('adds a declared lock live, filters by name, and removes a deleted one', async () => {
    const page = await browser.newPage();
    let reloads = 0;
    page.on('load', () => reloads++);
    await page.goto(services[1]!.url);
    const card = (name: string) => page.locator(`[data-lock="${name}"]`);
    await expect.poll(() => card('notes').count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => card('standup').count(), { timeout: 10_000 }).toBe(1);

    expect((await applyYaml(namespace, lockYaml('retro-team-b'))).code).toBe(0);
    await expect.poll(() => card('retro-team-b').count(), { timeout: 10_000 }).toBe(1);

    await page.fill('#filter', 'team');
    await expect.poll(() => card('notes').count(), { timeout: 10_000 }).toBe(0);
    expect(await card('standup').count()).toBe(0);
    expect(await card('retro-team-b').isVisible()).toBe(true);
    await page.fill('#filter', '');
    await expect.poll(() => card('notes').isVisible(), { timeout: 10_000 }).toBe(true);

    await kubectl('delete', 'lock', 'retro-team-b', '-n', namespace);
    await expect.poll(() => card('retro-team-b').count(), { timeout: 10_000 }).toBe(0);
    expect(reloads).toBe(1);
    await page.close();
  });

  // 150 Locks in `make test` (over the page, over /api/me's 100, over ?locks='s 100); VIEW_LOCKS=1000
  // runs it with a thousand (about 15 s more to provision them on an idle machine).
  const count = Number(process.env.VIEW_LOCKS ?? 150);
  it(
    `shows a page of 50 of ${count} locks, follows only those, and finds any lock by its name`,
    { timeout: 150_000 },
    async () => {
      const names = Array.from({ length: count }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
      const started = Date.now();
      const applied = await applyYaml(namespace, names.map((name) => lockYaml(name)).join('---\n'));
      expect(applied.code, applied.stderr).toBe(0);
      const api = services[1]!;
      // Served once the api-server's watch has them all.
      await expect
        .poll(
          async () => {
            const res = await fetch(
              `${api.url}/locks?search=bulk-&limit=500&continue=${count > 500 ? 'bulk-0499' : ''}`,
              {
                headers: { Accept: 'application/json' },
              },
            );
            return ((await res.json()) as { locks: unknown[] }).locks.length;
          },
          { timeout: 30_000 },
        )
        .toBe(count > 500 ? count - 500 : count);
      // Every one of them Ready (its Lease made by the controller).
      const unready = async () => {
        let pending = 0;
        for (const after of count > 500 ? ['', 'bulk-0499'] : ['']) {
          const res = await fetch(`${api.url}/locks?search=bulk-&limit=500&continue=${after}`, {
            headers: { Accept: 'application/json' },
          });
          const body = (await res.json()) as { locks: { provisioned?: boolean }[] };
          pending += body.locks.filter((l) => l.provisioned === false).length;
        }
        return pending;
      };
      await expect.poll(unready, { timeout: 60_000, interval: 1_000 }).toBe(0);
      console.log(
        `${count} Locks served and provisioned ${Date.now() - started} ms after kubectl apply`,
      );

      // Three reviews a lock: past 100 locks, /api/me answers only about the locks named.
      const me = await fetch(`${api.url}/api/me`, { headers: { Accept: 'application/json' } });
      expect(me.status).toBe(400);
      expect(await me.json()).toMatchObject({ error: 'too_many_locks' });

      const page = await browser.newPage();
      const sockets: { url: string; frames: string[] }[] = [];
      page.on('websocket', (ws) => {
        const socket = { url: ws.url(), frames: [] as string[] };
        sockets.push(socket);
        ws.on('framereceived', ({ payload }) => socket.frames.push(String(payload)));
      });
      await page.goto(api.url);
      const cards = page.locator('.lock');
      await expect.poll(() => cards.count(), { timeout: 10_000 }).toBe(50);
      expect(await page.locator('#next-page').isVisible()).toBe(true);
      expect(await page.locator('#page-note').textContent()).toMatch(/^Showing 50 locks/);
      // The socket follows exactly the locks shown.
      const subscribed = () => new URL(sockets.at(-1)!.url).searchParams.get('locks')?.split(',');
      await expect.poll(() => subscribed()?.length, { timeout: 10_000 }).toBe(50);
      const shown = await cards.evaluateAll((els) =>
        els.map((el) => (el as unknown as { dataset: { lock: string } }).dataset.lock),
      );
      expect(subscribed()).toEqual(shown);

      // Any lock is one filter away; the socket then follows it alone, and frames of others stay out.
      await page.fill('#filter', 'bulk-0142');
      // Typing waits for a pause, then the page asks for the list and reopens its socket.
      await expect.poll(() => subscribed(), { timeout: 10_000 }).toEqual(['bulk-0142']);
      await expect.poll(() => cards.count(), { timeout: 10_000 }).toBe(1);
      const post = (lock: string, user: string) =>
        fetch(`${api.url}/locks/${lock}/avail`, { method: 'POST', headers: { Username: user } });
      expect((await post('bulk-0100', 'mallory')).status).toBe(200);
      expect((await post('bulk-0142', 'ana')).status).toBe(200);
      await expect
        .poll(() => page.locator('[data-lock="bulk-0142"] .holder').textContent(), {
          timeout: 10_000,
        })
        .toBe('ana');
      const frames = sockets.at(-1)!.frames.join('\n');
      expect(frames).toContain('"lock":"bulk-0142"');
      expect(frames).not.toContain('bulk-0100');
      expect(frames).not.toContain('mallory');

      // The next page of everything.
      await page.fill('#filter', '');
      await expect.poll(() => cards.count(), { timeout: 10_000 }).toBe(50);
      await page.locator('#next-page').click();
      await expect
        .poll(() => page.locator('.lock').first().getAttribute('data-lock'))
        .toBe('bulk-0050');
      expect(subscribed()).toHaveLength(50);
      await page.close();
    },
  );
});
