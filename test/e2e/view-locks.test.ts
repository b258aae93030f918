import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, cluster, createNamespace, kubectl } from '../support/kube.ts';
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
    browser = await chromium.launch({
      executablePath: binPath('chromium'),
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu'],
    });
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
    await expect.poll(() => card('standup').count()).toBe(1);

    expect((await applyYaml(namespace, lockYaml('retro-team-b'))).code).toBe(0);
    await expect.poll(() => card('retro-team-b').count(), { timeout: 10_000 }).toBe(1);

    await page.fill('#filter', 'team');
    await expect.poll(() => card('retro-team-b').isVisible()).toBe(true);
    expect(await card('notes').isVisible()).toBe(false);
    expect(await card('standup').isVisible()).toBe(false);
    await page.fill('#filter', '');
    await expect.poll(() => card('notes').isVisible()).toBe(true);

    await kubectl('delete', 'lock', 'retro-team-b', '-n', namespace);
    await expect.poll(() => card('retro-team-b').count(), { timeout: 10_000 }).toBe(0);
    expect(reloads).toBe(1);
    await page.close();
  });
});
