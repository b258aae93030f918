import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cluster, createNamespace, kubectl, repoRoot } from '../support/kube.ts';
import { launchChromium } from '../support/browser.ts';
import { applyYaml } from '../support/locks.ts';
import { startApiServer, startController, type Service } from '../support/processes.ts';

/**
 * The management view as a manager and an editor use it, in headless Chromium on the real control
 * plane: the timeline of holds (held too long marked by the alert's threshold, the current hold
 * growing), who waits and for how long, the last releases with what they changed, and an edit made
 * in the page reaching a second browser and the Lease.
 */
/** Set UPDATE_SCREENSHOT=1 to refresh the README's screenshot from this test. */
const screenshot = resolve(repoRoot, 'docs/images/management-view.png');

describe('the management view: timeline, state at a glance, edit in the page', () => {
  let browser: Browser;
  let api: Service;
  let controller: Service;
  let namespace: string;
  /** Pages that must never raise a dialog: errors are shown in the page. */
  const dialogs: string[] = [];

  beforeAll(async () => {
    namespace = await createNamespace('viewtl');
    // An entry recorded before holds had a grant time: the timeline still shows it (a mark).
    const old = {
      token: 0,
      releasedBy: 'olga',
      lastEditor: 'olga',
      releasedAt: new Date(Date.now() - 10 * 60_000).toISOString(),
      reason: 'released',
      content: 'Went well: the old days.',
    };
    const map = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'retrospective-history', namespace },
      data: { 'releases.json': JSON.stringify([old]) },
    };
    const created = await applyYaml(namespace, JSON.stringify(map));
    expect(created.code, created.stderr).toBe(0);
    // Held too long after 2 s, on both the controller and the api-server: the view's threshold is
    // the one the alert uses.
    const env = { LOCKS: 'retrospective', HELD_TOO_LONG_SECONDS: '2', MAX_CONTENT_BYTES: '200' };
    controller = await startController(cluster().kubeconfig, namespace, env);
    api = await startApiServer(cluster().kubeconfig, namespace, { ...env, ADMIN_USERS: 'root' });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
    await Promise.all([api.stop(), controller.stop()]);
    expect(dialogs).toEqual([]);
  });

  const post = (verb: string, user: string, init: RequestInit = {}) =>
    fetch(`${api.url}/retrospective/${verb}`, {
      method: 'POST',
      ...init,
      headers: { Username: user, ...init.headers },
    });

  async function open(user?: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    // As an authenticating proxy in front would: every request of this page carries the name.
    if (user) await page.setExtraHTTPHeaders({ Username: user });
    await page.goto(api.url);
    return page;
  }

  const history = async () =>
    (
      (await (
        await fetch(`${api.url}/locks/retrospective/history`, {
          headers: { Accept: 'application/json' },
        })
      ).json()) as { releases: { holder?: string; acquiredAt?: string; reason: string }[] }
    ).releases;

  it('marks a hold past the alert threshold, grows the current hold live, and shows who waits for how long', async () => {
    expect((await post('avail', 'alice')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(
      (
        await post('change', 'alice', {
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ retrospective: 'line one\nline two' }),
        })
      ).status,
    ).toBe(200);
    expect((await post('release', 'alice')).status).toBe(200);
    // The controller records the hold with its grant time.
    await expect
      .poll(async () => (await history()).at(-1)?.holder, { timeout: 10_000 })
      .toBe('alice');
    expect((await history()).at(-1)?.acquiredAt).toMatch(/^\d{4}-\d\d-\d\dT/);

    expect((await post('avail', 'bob')).status).toBe(200);
    const page = await open();
    const card = page.locator('[data-lock="retrospective"]');
    const holds = card.locator('.timeline .hold');
    // The old entry (no grant time) as a mark, alice's hold marked too long, bob's growing.
    await expect.poll(() => holds.count(), { timeout: 10_000 }).toBe(3);
    expect(await card.locator('.timeline .hold.mark').getAttribute('data-holder')).toBe('olga');
    expect(
      await card.locator('.timeline .hold.too-long:not(.live)').getAttribute('data-holder'),
    ).toBe('alice');
    const live = card.locator('.timeline .hold.live');
    expect(await live.getAttribute('data-holder')).toBe('bob');
    // Its width, in percent of the window.
    const width = async () =>
      Number(/width: ([\d.]+)%/.exec((await live.getAttribute('style')) ?? '')?.[1] ?? 0);
    await page.locator('#window').selectOption('3600');
    const first = await width();
    expect(first).toBeGreaterThan(0);
    await expect.poll(width, { timeout: 5_000 }).toBeGreaterThan(first);
    expect(await card.locator('.timeline-summary').textContent()).toMatch(
      /^3 holds in the last hour, [12] held too long; longest \d+s \((alice|bob)\)$/,
    );
    // Bob passes the threshold: the state says so, and his bar is marked.
    await expect
      .poll(() => card.locator('.state').textContent(), { timeout: 5_000 })
      .toBe('held too long');
    expect(await live.getAttribute('class')).toContain('too-long');

    // Who waits, and for how long.
    const carol = post('avail?wait=20', 'carol');
    await expect
      .poll(() => card.locator('.waiting').textContent(), { timeout: 5_000 })
      .toMatch(/^carol \([0-9]s\)$/);
    await expect
      .poll(() => card.locator('.waiting').textContent(), { timeout: 5_000 })
      .toMatch(/^carol \([1-9]s\)$/);
    if (process.env.UPDATE_SCREENSHOT) {
      await card.locator('.history summary').click();
      mkdirSync(resolve(screenshot, '..'), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      await card.locator('.history summary').click();
    }
    expect((await post('release', 'bob')).status).toBe(200);
    expect((await carol).status).toBe(200);
    expect((await post('release', 'carol')).status).toBe(200);

    // The last releases, newest first, with what each changed.
    await card.locator('.history summary').click();
    const releases = card.locator('.releases li');
    // Three entries show as soon as bob's release is in: wait for carol's, the newest.
    await expect
      .poll(() => releases.first().locator('div').textContent())
      .toMatch(/carol \(released\)/);
    await expect.poll(() => releases.count()).toBe(3);
    expect(await releases.nth(2).locator('.diff').textContent()).toBe(
      // against the release before it (olga's)
      '+ line one\n+ line two\n- Went well: the old days.\n',
    );
    expect(await releases.nth(2).locator('div').textContent()).toMatch(
      /: alice \(released\) after [2-9]s$/,
    );
    expect(await releases.nth(0).locator('.diff').textContent()).toBe('no change to the content');
    await page.close();
  });

  it('takes the lock, edits and saves it in the page; a second browser and the Lease see the edit', async () => {
    const editor = await open('dana');
    const viewer = await open();
    const mine = editor.locator('[data-lock="retrospective"]');
    const theirs = viewer.locator('[data-lock="retrospective"]');
    await expect.poll(() => mine.locator('.take').isVisible(), { timeout: 10_000 }).toBe(true);
    await mine.locator('.take').click();
    await expect.poll(() => mine.locator('.editor textarea').isVisible()).toBe(true);
    await expect.poll(() => theirs.locator('.holder').textContent()).toBe('dana');

    // Over the lock's content limit: refused, said in the page, nothing written, still held.
    await mine.locator('.editor textarea').fill('x'.repeat(300));
    await mine.locator('.save').click();
    await expect.poll(() => mine.locator('.error').textContent()).toMatch(/200 bytes/);
    expect(await mine.locator('.error').isVisible()).toBe(true);
    expect(await theirs.locator('.holder').textContent()).toBe('dana');

    const text = 'Went well: editing in the page.\nTo improve: nothing.';
    await mine.locator('.editor textarea').fill(text);
    await mine.locator('.save-release').click();
    await expect
      .poll(() => theirs.locator('.content').textContent(), { timeout: 5_000 })
      .toBe(text);
    await expect.poll(() => theirs.locator('.state').textContent()).toBe('available');
    expect(await theirs.locator('.last-editor').textContent()).toBe('dana');
    expect(await mine.locator('.error').isVisible()).toBe(false);
    expect(await mine.locator('.editor').isVisible()).toBe(false);
    // The second browser's last release shows what changed.
    await theirs.locator('.history summary').click();
    await expect
      .poll(() => theirs.locator('.releases li').first().locator('.diff').textContent())
      .toContain('+ Went well: editing in the page.');

    const lease = await kubectl(
      'get',
      'lease',
      'retrospective',
      '-n',
      namespace,
      '-o',
      'jsonpath={.metadata.annotations.retrospective\\.dev/content}|{.metadata.annotations.retrospective\\.dev/last-editor}|{.spec.holderIdentity}',
    );
    expect(lease.stdout).toBe(`${text}|dana|`);
    await Promise.all([editor.close(), viewer.close()]);
  });

  it('shows a refused command in the page, not in a dialog', async () => {
    expect((await post('avail', 'erin')).status).toBe(200);
    const page = await open('frank');
    const card = page.locator('[data-lock="retrospective"]');
    await expect
      .poll(() => card.locator('.holder').textContent(), { timeout: 10_000 })
      .toBe('erin');
    // frank already waits in line from a script; a second place from the page is refused (one
    // place per user), and the page says so inline.
    const waiting = post('avail?wait=20', 'frank');
    await expect.poll(() => card.locator('.waiting').textContent()).toMatch(/^frank/);
    await card.locator('.take').click();
    await expect
      .poll(() => card.locator('.error').textContent(), { timeout: 5_000 })
      .toMatch(/already wait/);
    expect(await card.locator('.error').isVisible()).toBe(true);
    expect((await post('release', 'erin')).status).toBe(200);
    await expect
      .poll(() => card.locator('.holder').textContent(), { timeout: 10_000 })
      .toBe('frank');
    expect((await waiting).status).toBe(200);
    await card.locator('.release').click();
    await expect.poll(() => card.locator('.state').textContent()).toBe('available');
    await page.close();
  });
});
