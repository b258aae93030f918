import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cluster, createNamespace } from '../support/kube.ts';
import { launchChromium } from '../support/browser.ts';
import { startApiServer, startController, type Service } from '../support/processes.ts';

describe('the management view in headless Chromium', () => {
  let browser: Browser;
  let api: Service;
  let controller: Service;

  beforeAll(async () => {
    const namespace = await createNamespace('view');
    const locks = { LOCKS: 'retrospective,standup' };
    controller = await startController(cluster().kubeconfig, namespace, locks);
    api = await startApiServer(cluster().kubeconfig, namespace, { ...locks, ADMIN_USERS: 'root' });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
    await Promise.all([api.stop(), controller.stop()]);
  });

  const post = (verb: string, user: string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/retrospective/${verb}`, {
      method: 'POST',
      headers: { Username: user, ...headers },
    });

  /** A page of `user` (named by the proxy in front) waiting in line from the view while ana holds. */
  async function waitInLineFromPage(user: string) {
    const page = await browser.newPage();
    await page.setExtraHTTPHeaders({ Username: user }); // set by the proxy in front
    await page.goto(api.url);
    const card = page.locator('[data-lock="retrospective"]');
    await post('avail', 'ana');
    await expect.poll(() => card.locator('.holder').textContent()).toBe('ana');
    await expect.poll(() => card.locator('.take').isVisible()).toBe(true);
    await card.locator('.take').click();
    await expect
      .poll(() => card.locator('.waiting').textContent())
      .toMatch(new RegExp(`^${user} \\(\\d+s\\)$`));
    return { page, card };
  }

  it('shows the holder, then updates without reload when a release is made over HTTP', async () => {
    await post('avail', 'ujjwal');
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } }); // a phone
    let reloads = 0;
    page.on('load', () => reloads++);
    await page.goto(api.url);
    const card = page.locator('[data-lock="retrospective"]');
    await expect.poll(() => card.locator('.holder').textContent()).toBe('ujjwal');
    await expect.poll(() => card.locator('.state').textContent()).toBe('held');
    await expect.poll(() => card.locator('.held-for').textContent()).toMatch(/^\d+s$/);
    expect(await page.locator('#connection').textContent()).toBe('live');

    await post('change', 'ujjwal', { Retrospective: 'Went well: the lock. To improve: coffee.' });
    await post('release', 'ujjwal');

    await expect.poll(() => card.locator('.state').textContent()).toBe('available');
    expect(await card.locator('.holder').textContent()).toBe('—');
    expect(await card.locator('.content').textContent()).toBe(
      'Went well: the lock. To improve: coffee.',
    );
    expect(await card.locator('.last-editor').textContent()).toBe('ujjwal');
    expect(reloads).toBe(1);

    // The controller's history: a hold on the timeline, and the release with its content.
    await expect.poll(() => card.locator('.timeline .hold').count(), { timeout: 10_000 }).toBe(1);
    expect(await card.locator('.timeline .hold').getAttribute('data-holder')).toBe('ujjwal');
    await card.locator('.history summary').click();
    await expect
      .poll(() => card.locator('.releases li').allTextContents(), { timeout: 10_000 })
      .toEqual([
        expect.stringMatching(
          /ujjwal \(released\) after \d+s(Went well: the lock\. To improve: coffee\.)$/,
        ),
      ]);
    // Readable on a phone: nothing overflows the viewport horizontally.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      390,
    );

    await page.close();
  });

  it('keeps asking for a history answered 503 (a replica just started), then shows it', async () => {
    await post('avail', 'vera');
    await post('release', 'vera');
    const page = await browser.newPage();
    // The page's timers move only when the test moves them.
    await page.clock.install();
    await page.clock.pauseAt(Date.now() + 1000);
    let asked = 0;
    // Seven refusals in a row, more than the view once tried (it then showed no history).
    await page.route('**/locks/retrospective/history', (route) =>
      ++asked <= 7
        ? route.fulfill({ status: 503, headers: { 'Retry-After': '5' }, body: '{}' })
        : route.continue(),
    );
    await page.goto(api.url);
    const card = page.locator('[data-lock="retrospective"]');
    await expect.poll(() => asked).toBe(1);
    // Never before the server's Retry-After (its own backoff would be about 2 s), then again. The
    // paused clock moves 100 ms at a time until the view asks again: the page may set its timer
    // a step or two after the 503 reached it, and a request takes a moment to reach this process,
    // which only makes the count a little larger.
    let waited = 0;
    while (asked < 2 && waited < 10_000) {
      await page.clock.runFor(100);
      waited += 100;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    console.info(`asked again after ${waited} ms on the page's clock (Retry-After: 5)`);
    expect(asked).toBe(2);
    expect(waited).toBeGreaterThanOrEqual(5000);
    expect(waited).toBeLessThanOrEqual(7000);
    // Later each time, up to half a minute: the other five take about two minutes.
    await expect
      .poll(
        async () => {
          await page.clock.runFor(5000);
          return asked;
        },
        { timeout: 30_000 },
      )
      .toBe(8);
    await card.locator('.history summary').click();
    await expect
      .poll(() => card.locator('.releases li').allTextContents(), { timeout: 10_000 })
      .toContainEqual(expect.stringMatching(/^.*vera \(released\) after \d+s/));
    await page.close();
  });

  it('shows who waits in line, live, and no Force release button to a non-admin', async () => {
    const page = await browser.newPage();
    await page.goto(api.url);
    const card = page.locator('[data-lock="retrospective"]');
    await post('avail', 'ana');
    await expect.poll(() => card.locator('.holder').textContent()).toBe('ana');
    const bob = fetch(`${api.url}/retrospective/avail?wait=20`, {
      method: 'POST',
      headers: { Username: 'bob' },
    });
    await expect.poll(() => card.locator('.waiting').textContent()).toMatch(/^bob \(\d+s\)$/);
    expect(await card.locator('.force').isVisible()).toBe(false);
    await post('release', 'ana');
    expect((await bob).status).toBe(200);
    await expect.poll(() => card.locator('.holder').textContent()).toBe('bob');
    await expect.poll(() => card.locator('.waiting').textContent()).toBe('—');
    await post('release', 'bob');
    await page.close();
  });

  it('shows an admin a Force release button that releases with reason forced', async () => {
    const page = await browser.newPage();
    // As an authenticating proxy in front would: every request of this page carries the name.
    await page.setExtraHTTPHeaders({ Username: 'root' });
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(api.url);
    const card = page.locator('[data-lock="retrospective"]');
    await post('avail', 'carol');
    await expect.poll(() => card.locator('.holder').textContent()).toBe('carol');
    await expect.poll(() => page.locator('#user').textContent()).toBe('signed in as root');
    await card.locator('.force').click();
    await expect.poll(() => card.locator('.state').textContent()).toBe('available');
    expect(await card.locator('.last-release').textContent()).toMatch(/^root at .* \(forced\)$/);
    expect(await card.locator('.force').isVisible()).toBe(false);
    await page.close();
  });

  it('lets a user wait in line from the view and release from it', async () => {
    const { page, card } = await waitInLineFromPage('zoe');
    await post('release', 'ana');
    await expect.poll(() => card.locator('.holder').textContent()).toBe('zoe');
    await expect.poll(() => card.locator('.release').isVisible()).toBe(true);
    expect(await card.locator('.take').isVisible()).toBe(false);
    await card.locator('.release').click();
    await expect.poll(() => card.locator('.state').textContent()).toBe('available');
    expect(await card.locator('.last-release').textContent()).toMatch(/^zoe at .* \(released\)$/);
    await page.close();
  });

  it('says so when a wait in line ends because the page changed its locks, and frees the button', async () => {
    const { page, card } = await waitInLineFromPage('yan');
    // A new filter lists again and follows the locks on a new socket: the old one's wait ends.
    await page.fill('#filter', 'retro');
    await expect
      .poll(() => card.locator('.error').textContent(), { timeout: 5_000 })
      .toMatch(/wait in line ended/);
    expect(await card.locator('.take').isDisabled()).toBe(false);
    expect(await card.locator('.take').textContent()).toBe('Take it, or wait in line');
    await expect.poll(() => card.locator('.waiting').textContent(), { timeout: 10_000 }).toBe('—');
    await post('release', 'ana');
    await page.close();
  });
});
