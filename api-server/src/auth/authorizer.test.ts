import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AnswerCache, bearerToken, kubernetesAuthorizer } from './authorizer.js';
import { originAllowed } from './origin.js';
import { RateLimiter } from './rate-limit.js';
import { bearerProtocol, openSocket, rawRequest, startTestApp } from '../testing/harness.js';
import { TableReviewer } from '../testing/reviewer.js';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('AnswerCache', () => {
  it('keeps answers, good and bad, for its TTL, joins concurrent lookups and forgets failures', async () => {
    let now = 0;
    const cache = new AnswerCache<boolean>(1000, 2, () => now);
    let loads = 0;
    const load = (answer: boolean) => () => {
      loads++;
      return Promise.resolve(answer);
    };
    expect(await Promise.all([cache.get('a', load(false)), cache.get('a', load(true))])).toEqual([
      false,
      false,
    ]);
    expect(loads).toBe(1);
    now = 999;
    expect(await cache.get('a', load(true))).toBe(false);
    now = 1000;
    expect(await cache.get('a', load(true))).toBe(true);
    expect(loads).toBe(2);

    await expect(cache.get('b', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await cache.get('b', load(true))).toBe(true);
    await cache.get('c', load(true));
    expect(cache.size).toBe(2); // at most two keys: the oldest went
  });
});

describe('RateLimiter', () => {
  it('allows a burst of the per-minute limit, then answers how long to wait, per key', () => {
    let now = 0;
    const limiter = new RateLimiter(6, 100, () => now);
    for (let i = 0; i < 6; i++) expect(limiter.take('ana')).toBe(0);
    expect(limiter.take('ana')).toBe(10); // 6 a minute: one every 10 s
    expect(limiter.take('bob')).toBe(0);
    now = 10_000;
    expect(limiter.take('ana')).toBe(0);
    expect(limiter.take('ana')).toBe(10);
    expect(new RateLimiter(0).take('anyone')).toBe(0);
  });

  it('stays bounded in keys, forgetting refilled buckets first', () => {
    let now = 0;
    const limiter = new RateLimiter(60, 3, () => now);
    limiter.take('a');
    now = 60_000; // a has refilled
    limiter.take('b');
    limiter.take('b');
    limiter.take('c');
    limiter.take('d'); // a goes; b and c keep what they used
    for (let i = 0; i < 58; i++) expect(limiter.take('b')).toBe(0);
    expect(limiter.take('b')).toBeGreaterThan(0);
  });
});

describe('originAllowed', () => {
  const config = {
    ALLOWED_ORIGINS: ['https://ops.example.com'],
    ALLOWED_HOSTS: ['locks.example.com'],
  };
  it.each([
    ['no Origin (curl, kubectl)', { host: 'anything' }, true],
    [
      'its own page on localhost',
      { host: 'localhost:9090', origin: 'http://localhost:9090' },
      true,
    ],
    [
      'its own page on 127.0.0.1',
      { host: '127.0.0.1:9090', origin: 'http://127.0.0.1:9090' },
      true,
    ],
    [
      'its own page on an allowed host',
      { host: 'locks.example.com', origin: 'https://locks.example.com' },
      true,
    ],
    ['an allowed origin', { host: 'locks.example.com', origin: 'https://ops.example.com' }, true],
    [
      'DNS rebinding: Host and Origin both the attacker',
      { host: 'evil.example:9090', origin: 'http://evil.example:9090' },
      false,
    ],
    ['another site', { host: 'localhost:9090', origin: 'https://evil.example' }, false],
    ['a malformed Origin', { host: 'localhost', origin: 'not a url' }, false],
    ['the opaque origin of a sandboxed page', { host: 'localhost', origin: 'null' }, false],
  ])('%s: %s', (_name, headers, allowed) => {
    expect(originAllowed(request(headers), config)).toBe(allowed);
  });
});

describe('bearerToken', () => {
  it('reads the Authorization header or the WebSocket bearer protocol, never a URL', () => {
    expect(bearerToken(request({ authorization: 'Bearer abc.def' }))).toBe('abc.def');
    expect(
      bearerToken(
        request({ 'sec-websocket-protocol': `retrospective.v1, ${bearerProtocol('abc.def')}` }),
      ),
    ).toBe('abc.def');
    expect(bearerToken(request({}))).toBeUndefined();
    expect(() => bearerToken(request({ authorization: 'Basic YTpi' }))).toThrow(/Bearer/);
  });
});

describe('AUTH_MODE=kubernetes', () => {
  type TestApp = Awaited<ReturnType<typeof startTestApp>>;
  let t: TestApp;
  afterEach(async () => t.close());
  const reviewer = new TableReviewer(
    { v: 'viewer', e: 'editor', a: 'admin', n: 'nobody' },
    { viewer: ['get'], editor: ['get', 'hold'], admin: ['get', 'hold', 'force-release'] },
  );
  const call = (path: string, token?: string, method = 'GET') =>
    fetch(t.url + path, {
      method,
      headers: {
        Accept: 'application/json',
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
    });

  it('answers 401 without a valid token and 403 without the verb, and holds as the token user', async () => {
    t = await startTestApp({ AUTH_MODE: 'kubernetes' }, reviewer);
    const noToken = await call('/retrospective/check');
    expect(noToken.status).toBe(401);
    expect(noToken.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await call('/retrospective/check', 'forged')).status).toBe(401);
    expect((await call('/retrospective/check', 'n')).status).toBe(403);
    expect((await call('/retrospective/check', 'v')).status).toBe(200);
    expect((await call('/retrospective/avail', 'v', 'POST')).status).toBe(403);
    expect(t.service.state('retrospective').holder).toBeUndefined();

    // The Username header is ignored: the holder is whoever the token says.
    const granted = await fetch(`${t.url}/retrospective/avail`, {
      method: 'POST',
      headers: { Authorization: 'Bearer e', Username: 'admin' },
    });
    expect(granted.status).toBe(200);
    expect(t.service.state('retrospective').holder).toBe('editor');
    expect((await call('/retrospective/release?force=true', 'e', 'POST')).status).toBe(403);
    expect((await call('/retrospective/release?force=true', 'a', 'POST')).status).toBe(200);
    expect(t.service.state('retrospective')).toMatchObject({
      releasedBy: 'admin',
      releaseReason: 'forced',
    });
    expect(await (await call('/api/me', 'e')).json()).toMatchObject({
      user: 'editor',
      mode: 'kubernetes',
      locks: { retrospective: { view: true, hold: true, 'force-release': false } },
    });
    expect(await t.metricsText()).toMatch(
      /retrospective_auth_refusals_total\{reason="forbidden"\} [1-9]/,
    );
  });

  it('lets a viewer watch over the bearer subprotocol, and refuses a socket without a token', async () => {
    t = await startTestApp({ AUTH_MODE: 'kubernetes' }, reviewer);
    const socket = await openSocket(t.url, { token: 'v' });
    expect(socket.ws.protocol).toBe('retrospective.v1');
    expect((await socket.next('snapshot')).locks).toHaveLength(1);
    socket.close();
    await expect(openSocket(t.url)).rejects.toThrow(/401/);
    await expect(openSocket(t.url, { token: 'n' })).rejects.toThrow(/403/);
  });
});

describe('AUTH_MODE=header', () => {
  type TestApp = Awaited<ReturnType<typeof startTestApp>>;
  let t: TestApp;
  afterEach(async () => t.close());
  const post = (path: string, user: string, headers: Record<string, string> = {}) =>
    fetch(t.url + path, { method: 'POST', headers: { Username: user, ...headers } });

  it('lets only ADMIN_USERS force a release, with a released frame that says so', async () => {
    t = await startTestApp({ ADMIN_USERS: 'root' });
    const socket = await openSocket(t.url);
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    expect((await post('/retrospective/release?force=true', 'bob')).status).toBe(403);
    expect((await post('/retrospective/release?force=yes', 'root')).status).toBe(400);
    expect(t.service.state('retrospective').holder).toBe('ana');
    const forced = await post('/locks/retrospective/release?force=true', 'root');
    expect(forced.status).toBe(200);
    expect(await socket.next('released')).toMatchObject({ releasedBy: 'root', reason: 'forced' });
    expect((await post('/retrospective/release?force=true', 'root')).status).toBe(409);
    socket.close();
  });

  it('answers 429 with Retry-After to a user over the limit, leaves others alone and writes nothing', async () => {
    t = await startTestApp({ RATE_LIMIT_USER_PER_MINUTE: '3' });
    for (let i = 0; i < 3; i++)
      expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const state = t.service.state('retrospective');
    const limited = await post('/retrospective/release', 'ana');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('20');
    expect(t.service.state('retrospective')).toEqual(state);
    expect((await post('/retrospective/avail', 'bob')).status).toBe(423);
    expect(await t.metricsText()).toMatch(/retrospective_rate_limited_total\{scope="user"\} 1/);
  });

  it('refuses a mutation from a foreign page, and a DNS-rebinding page its socket', async () => {
    t = await startTestApp();
    const foreign = await post('/retrospective/avail', 'ana', { Origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(t.service.state('retrospective').holder).toBeUndefined();
    // A rebinding page: the attacker's name resolves to the service, so Host and Origin agree.
    const upgrade = (host: string) =>
      rawRequest(
        t.port,
        `GET /ws HTTP/1.1\r\nHost: ${host}\r\nOrigin: http://${host}\r\nConnection: Upgrade\r\n` +
          'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        { until: '\r\n\r\n' },
      );
    expect(await upgrade('evil.example:9090')).toMatch(/^HTTP\/1\.1 403/);
    expect(await upgrade('localhost:9090')).toMatch(/^HTTP\/1\.1 101/);
  });
});

describe('the kubernetes authorizer under a flood of made-up tokens', () => {
  it('keeps good tokens cached however many bad ones arrive, from however many addresses', async () => {
    const reviewer = new TableReviewer({ good: 'ana' }, { ana: ['get'] });
    const auth = kubernetesAuthorizer(
      { AUTH_CACHE_SECONDS: 300, AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE: 1, TRUSTED_PROXY_HOPS: 1 },
      reviewer,
      pino({ level: 'silent' }),
    );
    const from = (token: string, address: string) =>
      ({
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': address },
        socket: { remoteAddress: '127.0.0.1' },
      }) as unknown as IncomingMessage;
    expect(await auth.identify(from('good', '192.168.0.1'), 'view')).toMatchObject({ user: 'ana' });
    // More made-up tokens than the cache of good answers holds, each from an address of its own.
    for (let i = 0; i < 11_000; i++)
      await expect(
        auth.identify(from(`forged-${i}`, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`), 'view'),
      ).rejects.toMatchObject({ status: 401 });
    expect(reviewer.reviews).toBe(11_001);
    expect(await auth.identify(from('good', '192.168.0.1'), 'view')).toMatchObject({ user: 'ana' });
    expect(reviewer.reviews).toBe(11_001);
  });
});
