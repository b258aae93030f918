import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { launchChromium } from '../support/browser.ts';
import { installAndRun, type ChartProcesses } from '../support/chart-processes.ts';
import { createNamespace, kubectl, leaseEvents, leaseHolder } from '../support/kube.ts';

/**
 * auth.mode=kubernetes on the real control plane: the api-server runs on the chart's
 * ServiceAccount (so the chart's TokenReview/SubjectAccessReview grant is what is tested) and
 * callers are ServiceAccounts bound to the chart's viewer, editor and admin Roles.
 */
const cacheSeconds = 2;
/** kube-apiserver caches a successful token authentication for 10 s (TokenSuccessCacheTTL). */
const apiserverTokenCacheSeconds = 10;
const values = { 'auth.mode': 'kubernetes', 'auth.cacheSeconds': String(cacheSeconds) };
const release = 'auth';
const accounts = {
  nobody: undefined,
  viewer: 'viewer',
  editor: 'editor',
  admin: 'admin',
  leaver: 'editor',
  revoked: 'editor',
} as const;
type Account = keyof typeof accounts;

// About 21 s alone: proving a deleted account's token is refused means waiting out
// kube-apiserver's own 10 s cache of successful token authentications (and ours).
describe('auth.mode=kubernetes: bearer tokens, the chart Roles, force release', () => {
  let namespace: string;
  let p: ChartProcesses;
  const tokens = {} as Record<Account, string>;
  const user = (account: Account) => `system:serviceaccount:${namespace}:${account}`;

  const call = (path: string, account?: Account, method = 'GET', headers = {}) =>
    fetch(`${p.api.url}${path}`, {
      method,
      headers: {
        Accept: 'application/json',
        ...(account ? { Authorization: `Bearer ${tokens[account]}` } : {}),
        ...headers,
      },
    });
  const holder = () => leaseHolder(namespace, 'retrospective');
  /** Seconds until `probe` answers `status`, polling every 100 ms. */
  const secondsUntil = async (probe: () => Promise<Response>, status: number) => {
    const started = performance.now();
    await expect
      .poll(async () => (await probe()).status, {
        timeout: cacheSeconds * 1000 + 10_000,
        interval: 100,
      })
      .toBe(status);
    return (performance.now() - started) / 1000;
  };

  beforeAll(async () => {
    namespace = await createNamespace('auth');
    p = await installAndRun(namespace, release, values);
    for (const [account, role] of Object.entries(accounts) as [Account, string | undefined][]) {
      expect((await kubectl('create', 'serviceaccount', account, '-n', namespace)).code).toBe(0);
      if (role)
        expect(
          (
            await kubectl(
              'create',
              'rolebinding',
              account,
              `--role=${release}-retrospective-${role}`,
              `--serviceaccount=${namespace}:${account}`,
              '-n',
              namespace,
            )
          ).code,
        ).toBe(0);
      const token = await kubectl('create', 'token', account, '-n', namespace);
      expect(token.code, token.stderr).toBe(0);
      tokens[account] = token.stdout.trim();
    }
  }, 90_000);
  afterAll(async () => p.stop());

  it('answers 401 without a valid token and 403 to an account with no binding', async () => {
    // The controller provisions the Lease.
    await expect
      .poll(async () => (await call('/retrospective/check', 'viewer')).status, { timeout: 20_000 })
      .toBe(200);
    const none = await call('/retrospective/check');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(
      (await call('/retrospective/check', undefined, 'GET', { Authorization: 'Bearer forged' }))
        .status,
    ).toBe(401);
    expect((await call('/retrospective/check', 'nobody')).status).toBe(403);
    expect((await call('/retrospective/avail', 'nobody', 'POST')).status).toBe(403);
    await expect(openSocket(p.api.url)).rejects.toThrow(/401/);
    await expect(openSocket(p.api.url, { token: tokens.nobody })).rejects.toThrow(/403/);
  });

  it('lets a viewer check, watch and read history, but not take the lock', async () => {
    expect((await call('/retrospective/check', 'viewer')).status).toBe(200);
    expect((await call('/locks/retrospective/history', 'viewer')).status).toBe(200);
    const socket = await openSocket(p.api.url, { token: tokens.viewer });
    expect((await socket.next('snapshot')).locks).toHaveLength(1);
    socket.close();
    expect((await call('/retrospective/avail', 'viewer')).status).toBe(403);
    expect(await holder()).toBe('');
  });

  it('lets an editor run the seed workflow, holding as the token user whatever Username says', async () => {
    const socket = await openSocket(p.api.url, { token: tokens.viewer });
    expect(
      (await call('/retrospective/avail', 'editor', 'GET', { Username: 'admin' })).status,
    ).toBe(200);
    expect(await holder()).toBe(user('editor'));
    expect((await call('/retrospective/avail', 'admin')).status).toBe(423);
    const changed = await call('/retrospective/change', 'editor', 'POST', {
      Retrospective: 'by editor',
    });
    expect(changed.status).toBe(200);
    expect((await call('/retrospective/release', 'editor', 'POST')).status).toBe(200);
    expect(await socket.next('released')).toMatchObject({
      releasedBy: user('editor'),
      lastEditor: user('editor'),
      content: 'by editor',
      reason: 'released',
    });
    socket.close();
  });

  it('lets only an admin force-release another hold, recorded in an Event naming the admin', async () => {
    const socket = await openSocket(p.api.url, { token: tokens.viewer });
    expect((await call('/retrospective/avail', 'editor', 'POST')).status).toBe(200);
    expect((await call('/retrospective/release?force=true', 'editor', 'POST')).status).toBe(403);
    expect(await (await call('/api/me', 'admin')).json()).toMatchObject({
      user: user('admin'),
      locks: { retrospective: { view: true, hold: true, 'force-release': true } },
    });
    const forced = await call('/locks/retrospective/release?force=true', 'admin', 'POST');
    expect(forced.status).toBe(200);
    expect(await socket.next('released')).toMatchObject({
      releasedBy: user('admin'),
      reason: 'forced',
    });
    socket.close();
    expect(await holder()).toBe('');
    await expect
      .poll(() => leaseEvents(namespace, 'retrospective', true), { timeout: 10_000 })
      .toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^ForceReleased:${user('admin')} force-released retrospective, held by ${user('editor')} after \\d+ s$`,
          ),
        ),
      );
  });

  it('signs a manager in on the view, and loads a history refused meanwhile once signed in again', async () => {
    // A release for the history to show.
    expect((await call('/retrospective/avail', 'editor', 'POST')).status).toBe(200);
    expect((await call('/retrospective/release', 'editor', 'POST')).status).toBe(200);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      // The first history request is refused, as for a token that lapsed just then.
      let historyAsked = 0;
      await page.route('**/locks/retrospective/history', (route) =>
        ++historyAsked === 1
          ? route.fulfill({
              status: 401,
              contentType: 'application/json',
              body: '{"error":"unauthenticated"}',
            })
          : route.continue(),
      );
      await page.goto(p.api.url);
      const form = page.locator('#sign-in');
      const signIn = async (account: Account) => {
        await form.locator('input[name=token]').fill(tokens[account]);
        await form.locator('button[type=submit]').click();
      };
      // Anonymous: refused (401), so the page asks for a token.
      await expect.poll(() => form.isVisible()).toBe(true);
      await signIn('viewer');
      const card = page.locator('[data-lock="retrospective"]');
      await expect.poll(() => card.count()).toBe(1);
      await expect
        .poll(() => page.locator('#user').textContent())
        .toBe(`signed in as ${user('viewer')}`);
      expect(await card.locator('.take').isHidden()).toBe(true); // a viewer may not hold it
      // The refused history asks for the token again, and is asked for anew after it.
      await expect.poll(() => historyAsked).toBe(1);
      await expect.poll(() => form.isVisible()).toBe(true);
      expect(await card.locator('.releases li').count()).toBe(0);
      await signIn('viewer');
      await expect.poll(() => historyAsked).toBe(2);
      // The editor's release above, from the history.
      await expect.poll(() => card.locator('.releases li').count()).toBeGreaterThan(0);
      expect(await form.isVisible()).toBe(false);
    } finally {
      await browser.close();
    }
  });

  it(
    `stops a revoked binding within ${cacheSeconds} s (our cache), a deleted account's token within ${cacheSeconds} + ${apiserverTokenCacheSeconds} s (and the API server's)`,
    { timeout: 60_000 },
    async () => {
      expect((await call('/retrospective/check', 'leaver')).status).toBe(200);
      expect((await kubectl('delete', 'serviceaccount', 'leaver', '-n', namespace)).code).toBe(0);
      const deleted = await secondsUntil(() => call('/retrospective/check', 'leaver'), 401);

      expect((await call('/retrospective/avail', 'revoked', 'POST')).status).toBe(200);
      expect((await kubectl('delete', 'rolebinding', 'revoked', '-n', namespace)).code).toBe(0);
      const revoked = await secondsUntil(
        () => call('/retrospective/change', 'revoked', 'POST', { Retrospective: 'late' }),
        403,
      );
      console.info(
        `deleted token refused after ${deleted.toFixed(2)} s, revoked binding after ${revoked.toFixed(2)} s`,
      );
      // RBAC answers at once, so a revoked binding is bounded by our cache alone; the API server
      // keeps accepting a deleted account's token until its own token cache entry ages out.
      expect(revoked).toBeLessThan(cacheSeconds + 3);
      expect(deleted).toBeLessThan(cacheSeconds + apiserverTokenCacheSeconds + 3);
      expect((await call('/retrospective/release?force=true', 'admin', 'POST')).status).toBe(200);
    },
  );
});
