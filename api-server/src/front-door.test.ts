import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryHistory } from '@retrospective/lock';
import { stillForMs } from '@retrospective/runtime';
import { bearerProtocol, openSocket, rawRequest, startTestApp } from './testing/harness.js';
import { TableReviewer } from './testing/reviewer.js';
import type { Identity } from './auth/authorizer.js';

/**
 * What one anonymous or hostile client could do to a replica before (header injection, unbounded
 * metric series, cross-site avail, hanging up mid-review, sockets that outlive their credentials),
 * each through real sockets against the app built in-process.
 */

type TestApp = Awaited<ReturnType<typeof startTestApp>>;
let t: TestApp;
afterEach(async () => t.close());

const upgrade = (path: string, headers: Record<string, string> = {}) =>
  [
    `GET ${path} HTTP/1.1`,
    'Host: localhost',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');

/** The header names of a raw answer, lower-cased. */
const headerNames = (raw: string) =>
  raw
    .split('\r\n\r\n')[0]!
    .split('\r\n')
    .slice(1)
    .map((line) => line.split(':')[0]!.toLowerCase());

describe('raw answers on the upgrade path', () => {
  it('never echo a decoded query value into the status line or a header', async () => {
    t = await startTestApp();
    for (const since of [
      '%0d%0aSet-Cookie:%20x=1',
      '%0aSet-Cookie:x=1',
      'a%0d%0a%0d%0a<h1>',
      '%00',
    ]) {
      const raw = await rawRequest(t.port, upgrade(`/ws?since=${since}`));
      expect(raw).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
      expect(headerNames(raw)).not.toContain('set-cookie');
      expect(headerNames(raw).sort()).toEqual(['connection', 'content-length', 'content-type']);
    }
  });

  it('check the Origin before reading the query', async () => {
    t = await startTestApp();
    const raw = await rawRequest(
      t.port,
      upgrade('/ws?since=%0d%0aSet-Cookie:%20x=1', { Origin: 'https://evil.example' }),
    );
    expect(raw).toMatch(/^HTTP\/1.1 403 Forbidden\r\n/);
    expect(raw).not.toMatch(/since/);
  });
});

describe('metric series', () => {
  it('are made only for configured locks: unknown names share one label value', async () => {
    t = await startTestApp();
    await fetch(`${t.url}/retrospective/check`);
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => fetch(`${t.url}/locks/no-such-lock-${i}/check`)),
    );
    await fetch(`${t.url}/locks/another/avail`, { headers: { Username: 'ana' } });
    const text = await t.metricsText();
    const locks = new Set(
      [...text.matchAll(/retrospective_lock_requests_total\{lock="([^"]*)"/g)].map((m) => m[1]),
    );
    expect([...locks].sort()).toEqual(['_unknown', 'retrospective']);
    expect(text).toMatch(
      /retrospective_lock_requests_total\{lock="_unknown",action="check",outcome="unknown_lock"\} 300/,
    );
  });
});

describe('Fetch Metadata', () => {
  it('refuses a cross-site navigation to avail, and lets curl and the own page through', async () => {
    t = await startTestApp();
    const navigate = await fetch(`${t.url}/retrospective/avail`, {
      headers: {
        Username: 'victim',
        'Sec-Fetch-Site': 'cross-site',
        'Sec-Fetch-Mode': 'navigate',
        Accept: 'application/json',
      },
    });
    expect(navigate.status).toBe(403);
    expect(await navigate.json()).toMatchObject({ error: 'forbidden_cross_site' });
    expect(t.service.state('retrospective').holder).toBeUndefined();
    const ownPage = await fetch(`${t.url}/retrospective/avail`, {
      headers: { Username: 'ana', 'Sec-Fetch-Site': 'same-origin' },
    });
    expect(ownPage.status).toBe(200);
    // The seed's curl line: no Fetch Metadata at all.
    const curl = await fetch(`${t.url}/retrospective/release`, {
      method: 'POST',
      headers: { Username: 'ana' },
    });
    expect(curl.status).toBe(200);
    // Reading stays open to any page (it is what the view and dashboards do).
    const read = await fetch(`${t.url}/retrospective/check`, {
      headers: { 'Sec-Fetch-Site': 'cross-site' },
    });
    expect(read.status).toBe(200);
  });

  it('refuses a navigation from a sibling host too (same-site), and lets a typed address through', async () => {
    t = await startTestApp();
    const sibling = await fetch(`${t.url}/retrospective/avail`, {
      headers: { Username: 'victim', 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'navigate' },
    });
    expect(sibling.status).toBe(403);
    expect(t.service.state('retrospective').holder).toBeUndefined();
    const typed = await fetch(`${t.url}/retrospective/avail`, {
      headers: { Username: 'ana', 'Sec-Fetch-Site': 'none', 'Sec-Fetch-Mode': 'navigate' },
    });
    expect(typed.status).toBe(200);
  });

  it('lets a page of an explicitly allowed origin change locks', async () => {
    t = await startTestApp({ ALLOWED_ORIGINS: 'https://ops.example.com' });
    const res = await fetch(`${t.url}/retrospective/avail`, {
      method: 'POST',
      headers: {
        Username: 'ana',
        Origin: 'https://ops.example.com',
        'Sec-Fetch-Site': 'cross-site',
      },
    });
    expect(res.status).toBe(200);
  });
});

describe('connections', () => {
  it('stay open after a refusal of a request without a body', async () => {
    t = await startTestApp();
    await fetch(`${t.url}/retrospective/avail`, { headers: { Username: 'ana' } });
    for (let i = 0; i < 20; i++) {
      const raw = await rawRequest(
        t.port,
        'GET /retrospective/avail HTTP/1.1\r\nHost: localhost\r\nUsername: bob\r\n\r\n',
        { until: '\r\n\r\n' },
      );
      expect(raw).toMatch(/^HTTP\/1.1 423 Locked\r\n/);
      expect(raw).toMatch(/\r\nConnection: keep-alive\r\n/);
    }
  });
});

describe('the connection cap', () => {
  it('closes connections over HTTP_MAX_CONNECTIONS as they arrive, then still ones to make room, keeping WebSockets and waiters', async () => {
    t = await startTestApp({ HTTP_MAX_CONNECTIONS: '4', WS_MAX_CONNECTIONS: '2' });
    const request = (verb: string, user: string, keep = false) =>
      `POST /retrospective/${verb} HTTP/1.1\r\nHost: localhost\r\nUsername: ${user}\r\n` +
      `Connection: ${keep ? 'keep-alive' : 'close'}\r\n\r\n`;
    expect(await rawRequest(t.port, request('avail', 'ana'))).toMatch(/^HTTP\/1.1 200 /);
    const ws = await openSocket(t.url); // 1
    const waiter = await opened(t.port); // 2: waits in line, its request in progress
    const granted = received(waiter, /\r\n\r\n/);
    waiter.write(request('avail?wait=30', 'bob', true));
    await vi.waitFor(async () =>
      expect(await t.metricsText()).toMatch(
        /^retrospective_lock_queue_length\{lock="retrospective"\} 1$/m,
      ),
    );
    const spare = await opened(t.port); // 3: never sends a byte
    const kept = await opened(t.port); // 4: answered, kept alive, idle
    const answered = received(kept, /\r\n\r\n/);
    kept.write('GET /retrospective/check HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(await answered).toMatch(/^HTTP\/1.1 200 /);
    const closing = (socket: Socket) => new Promise((resolve) => socket.once('close', resolve));
    const [spareClosed, keptClosed] = [closing(spare), closing(kept)];
    let keptOpen = true;
    void keptClosed.then(() => (keptOpen = false));
    /** A fifth connection, closed unanswered before it could send a byte: its answer. */
    const turnedAway = async () => {
      const over = await opened(t.port);
      const answer = received(over);
      over.write(
        'GET /retrospective/check HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      );
      return answer;
    };
    const dropped = async () =>
      /^retrospective_http_connections_dropped_total\{reason="connection_limit"\} (\d+)$/m.exec(
        await t.metricsText(),
      )?.[1];
    const still = () => new Promise((resolve) => setTimeout(resolve, stillForMs + 100));

    // Still for long enough, the connection that never sent a byte is closed to make room when one
    // is turned away; the one whose request was answered a moment before is kept for now...
    await still();
    expect(await turnedAway()).toBe('');
    await spareClosed;
    expect(await dropped()).toBe('1');
    expect(keptOpen).toBe(true);
    // ...and closed at the next one turned away, once it too has been still that long. A request
    // took the room meanwhile (its kept-alive connection makes four again).
    expect((await fetch(`${t.url}/retrospective/check`)).status).toBe(200);
    await still();
    expect(await turnedAway()).toBe('');
    await keptClosed;
    expect(await dropped()).toBe('2');
    // The WebSocket and the waiter, as still as the others, are kept.
    expect(ws.ws.readyState).toBe(ws.ws.OPEN);
    expect(await rawRequest(t.port, request('release', 'ana'))).toMatch(/^HTTP\/1.1 200 /);
    expect(await granted).toMatch(/^HTTP\/1.1 200 /);
    expect(await t.metricsText()).toMatch(/^retrospective_http_max_connections 4$/m);
    ws.close();
    waiter.destroy();
  });
});

/** What `socket` receives until `until` matches, or until it closes (errors are its closing). */
const received = (socket: Socket, until?: RegExp) =>
  new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (until?.test(text)) resolve(text);
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
  });

/** A TCP connection to `port`, once connected. */
const opened = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });

describe('force release', () => {
  it('is pinned to the hold the admin saw when it carries If-Match', async () => {
    t = await startTestApp({ ADMIN_USERS: 'root' });
    const post = (path: string, user: string, headers: Record<string, string> = {}) =>
      fetch(`${t.url}${path}`, {
        method: 'POST',
        headers: { Username: user, Accept: 'application/json', ...headers },
      });
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect((await post('/retrospective/avail', 'bob')).status).toBe(200);
    // The admin saw ana's hold (token 1); bob's (token 2) is not the one they meant to end.
    const stale = await post('/retrospective/release?force=true', 'root', { 'If-Match': '1' });
    expect(stale.status).toBe(412);
    expect(t.service.state('retrospective').holder).toBe('bob');
    const pinned = await post('/retrospective/release?force=true', 'root', { 'If-Match': '2' });
    expect(pinned.status).toBe(200);
    expect(t.service.state('retrospective').holder).toBeUndefined();
  });
});

describe('serialisation', () => {
  it('serialises a history once per version of it, however many read it', async () => {
    const history = new MemoryHistory(50);
    for (let token = 1; token <= 50; token++)
      await history.append('retrospective', {
        token,
        releasedBy: 'ana',
        releasedAt: new Date(token * 1000).toISOString(),
        reason: 'released',
        content: 'x'.repeat(1000),
      });
    t = await startTestApp({}, undefined, { history });
    const stringify = vi.spyOn(JSON, 'stringify');
    const read = () =>
      fetch(`${t.url}/locks/retrospective/history`, { headers: { Accept: 'application/json' } });
    try {
      for (let i = 0; i < 10; i++) expect((await read()).status).toBe(200);
      const wholeHistory = (value: unknown) => Array.isArray(value) && value.length === 50;
      expect(stringify.mock.calls.filter(([value]) => wholeHistory(value))).toHaveLength(1);
      const body = (await (await read()).json()) as { lock: string; releases: unknown[] };
      expect(body.lock).toBe('retrospective');
      expect(body.releases).toHaveLength(50);
      const newest = (await (
        await fetch(`${t.url}/locks/retrospective/history?limit=2`, {
          headers: { Accept: 'application/json' },
        })
      ).json()) as { releases: { token: number }[] };
      expect(newest.releases.map((r) => r.token)).toEqual([49, 50]);
      expect((await fetch(`${t.url}/locks/retrospective/history?limit=0`)).status).toBe(400);
    } finally {
      stringify.mockRestore();
    }
  });

  it('serialises a broadcast frame once, however many clients receive it', async () => {
    t = await startTestApp();
    const sockets = await Promise.all(Array.from({ length: 20 }, () => openSocket(t.url)));
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      await fetch(`${t.url}/retrospective/avail`, { headers: { Username: 'ana' } });
      await Promise.all(sockets.map((s) => s.next('acquired')));
      const frames = stringify.mock.calls.filter(
        ([value]) => (value as { type?: unknown } | null)?.type === 'acquired',
      );
      expect(frames).toHaveLength(1);
    } finally {
      stringify.mockRestore();
      for (const s of sockets) s.close();
    }
  });
});

describe('kubernetes auth mode', () => {
  const reviewerFor = () =>
    new TableReviewer(
      { a: 'ana', b: 'bob', v: 'viewer' },
      { ana: ['get', 'hold'], bob: ['get', 'hold'], viewer: ['get'] },
    );
  const call = (path: string, token: string, init: RequestInit = {}) =>
    fetch(t.url + path, {
      ...init,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    });

  it('never puts in line a caller who hung up while its token was being reviewed', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp({ AUTH_MODE: 'kubernetes', WAIT_MAX_SECONDS: '30' }, reviewer);
    expect((await call('/retrospective/avail', 'a')).status).toBe(200);
    reviewer.delayMs = 300;
    const gone = new AbortController();
    const bob = call('/retrospective/avail?wait=20', 'b', { signal: gone.signal }).catch(
      () => 'left',
    );
    await new Promise((r) => setTimeout(r, 100));
    gone.abort();
    expect(await bob).toBe('left');
    await new Promise((r) => setTimeout(r, 500));
    expect(t.service.state('retrospective').queue).toBeUndefined();
    reviewer.delayMs = 0;
    expect((await call('/retrospective/release', 'a', { method: 'POST' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(t.service.state('retrospective').holder).toBeUndefined();
  });

  it('counts handshakes under review against the connection limit', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp({ AUTH_MODE: 'kubernetes', WS_MAX_CONNECTIONS: '2' }, reviewer);
    reviewer.delayMs = 300;
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        rawRequest(
          t.port,
          upgrade('/ws', { 'Sec-WebSocket-Protocol': `retrospective.v1, ${bearerProtocol('v')}` }),
          { until: '\r\n\r\n' },
        ),
      ),
    );
    const statuses = answers.map((a) => a.split(' ')[1]).sort();
    expect(statuses).toEqual(['101', '101', '503', '503', '503', '503']);
  });

  it('closes an open socket (1008) once its user may no longer view, within AUTH_CACHE_SECONDS', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp({ AUTH_MODE: 'kubernetes', AUTH_CACHE_SECONDS: '2' }, reviewer);
    const viewer = await openSocket(t.url, { token: 'v' });
    const closed = new Promise<number>((resolve) => viewer.ws.once('close', resolve));
    reviewer.grants.viewer = []; // the RoleBinding is deleted
    const started = performance.now();
    expect(await closed).toBe(1008);
    // Within AUTH_CACHE_SECONDS (2 s; a check on answers a full period old would take up to 4 s),
    // with room for a slow machine.
    console.info(`revoked viewer closed after ${Math.round(performance.now() - started)} ms`);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('checks an open socket again even when its address used up its token reviews', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp(
      {
        AUTH_MODE: 'kubernetes',
        AUTH_CACHE_SECONDS: '2',
        AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE: '1',
      },
      reviewer,
    );
    const viewer = await openSocket(t.url, { token: 'v' });
    const closed = new Promise<number>((resolve) => viewer.ws.once('close', resolve));
    // The same address sends made-up tokens: its review budget is gone.
    expect((await call('/retrospective/check', 'forged')).status).toBe(429);
    delete reviewer.tokens.v;
    expect(await closed).toBe(1008);
  });

  it('closes an open socket (1013) whose credentials cannot be checked for two periods', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp({ AUTH_MODE: 'kubernetes', AUTH_CACHE_SECONDS: '1' }, reviewer);
    const viewer = await openSocket(t.url, { token: 'v' });
    const closed = new Promise<number>((resolve) => viewer.ws.once('close', resolve));
    reviewer.reviewToken = () => Promise.reject(new Error('the API server is unreachable'));
    expect(await closed).toBe(1013);
  });

  it('has at most 64 token reviews waiting on the API server, whatever the number of addresses', async () => {
    const reviewer = reviewerFor();
    // Reviews stay in flight until the gate opens, however slowly the requests arrive.
    let open = () => {};
    reviewer.gate = new Promise((resolve) => (open = resolve));
    t = await startTestApp({ AUTH_MODE: 'kubernetes', TRUSTED_PROXY_HOPS: '1' }, reviewer);
    let refused = 0;
    const answers = Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const answer = await fetch(`${t.url}/retrospective/check`, {
          headers: { Authorization: `Bearer forged-${i}`, 'X-Forwarded-For': `10.0.0.${i}` },
        });
        if (answer.status === 503) refused++;
        return answer.status;
      }),
    );
    // Every request arrived: 64 wait on their review, the rest were answered 503 at once.
    await vi.waitFor(() => expect(refused).toBe(36), { timeout: 20_000 });
    expect(reviewer.reviews).toBe(64);
    open();
    const statuses = await answers;
    expect(statuses.filter((s) => s === 401)).toHaveLength(64);
    expect(reviewer.reviews).toBe(64);
  });

  it('closes an open socket (1008) once its token is no longer valid', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp({ AUTH_MODE: 'kubernetes', AUTH_CACHE_SECONDS: '1' }, reviewer);
    const viewer = await openSocket(t.url, { token: 'v' });
    const closed = new Promise<number>((resolve) => viewer.ws.once('close', resolve));
    delete reviewer.tokens.v; // the ServiceAccount is deleted
    expect(await closed).toBe(1008);
  });

  it('reviews at most AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE unknown tokens per address, keeping good ones cached', async () => {
    const reviewer = reviewerFor();
    t = await startTestApp(
      { AUTH_MODE: 'kubernetes', AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE: '20' },
      reviewer,
    );
    expect((await call('/retrospective/check', 'a')).status).toBe(200);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => call('/retrospective/check', `forged-${i}`)),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(19);
    expect(statuses.filter((s) => s === 429)).toHaveLength(81);
    expect(reviewer.reviews).toBe(20);
    // A forged token tried again is answered from the cache of refusals, not reviewed again.
    expect((await call('/retrospective/check', 'forged-0')).status).toBe(401);
    // The good token is still known: no review, no limit.
    expect((await call('/retrospective/check', 'a')).status).toBe(200);
    expect(reviewer.reviews).toBe(20);
  });
});

describe('sockets the server owns', () => {
  it('survive a client that resets them while its upgrade is under review', async () => {
    const reviewer = new TableReviewer({ v: 'viewer' }, { viewer: ['get'] });
    reviewer.delayMs = 200;
    t = await startTestApp({ AUTH_MODE: 'kubernetes' }, reviewer);
    for (let i = 0; i < 5; i++) {
      const socket = connect(t.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(
        upgrade('/ws', { 'Sec-WebSocket-Protocol': `retrospective.v1, ${bearerProtocol('v')}` }),
      );
      await new Promise((r) => setTimeout(r, 20));
      socket.resetAndDestroy();
    }
    await new Promise((r) => setTimeout(r, 400));
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });
});

describe('listing and watching locks in kubernetes auth mode', () => {
  const locks = Array.from({ length: 30 }, (_, i) => `team-${String(i).padStart(2, '0')}`);
  /** ana may view every lock (a rule without names); bob only team-03 and team-17. */
  class NamedReviewer extends TableReviewer {
    checks: string[] = [];
    override async mayAccess(who: Identity, verb: string, lock: string): Promise<boolean> {
      this.checks.push(`${who.user}:${lock}`);
      if (verb !== 'get') return false;
      return who.user === 'ana' || ['team-03', 'team-17'].includes(lock);
    }
  }
  const list = (token: string) =>
    fetch(`${t.url}/locks?limit=500`, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    }).then(async (res) => ((await res.json()) as { locks: { lock: string }[] }).locks);

  it('asks once for a viewer of every lock, and lists only their own locks to others', async () => {
    const reviewer = new NamedReviewer({ a: 'ana', b: 'bob' }, {});
    t = await startTestApp({ AUTH_MODE: 'kubernetes', LOCKS: locks.join(',') }, reviewer);
    expect(await list('a')).toHaveLength(30);
    expect(reviewer.checks).toEqual(['ana:']);
    expect((await list('b')).map((l) => l.lock)).toEqual(['team-03', 'team-17']);
    const socket = await openSocket(t.url, { token: 'b' });
    const snapshot = await socket.next('snapshot');
    expect((snapshot.locks as { lock: string }[]).map((l) => l.lock)).toEqual([
      'team-03',
      'team-17',
    ]);
    socket.close();
  });
});
