import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HistoryStore } from '@retrospective/lock';
import { openSocket, rawRequest, startTestApp } from './testing/harness.js';

/** How many requests the fast path of avail and release took (the real one, counted). */
const fastPath = vi.hoisted(() => ({ taken: 0 }));
vi.mock('./http/fast-commands.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./http/fast-commands.js')>();
  return {
    fastCommands: (...args: Parameters<typeof real.fastCommands>) => {
      const handle = real.fastCommands(...args);
      return (...request: Parameters<typeof handle>) => {
        const took = handle(...request);
        if (took) fastPath.taken++;
        return took;
      };
    },
  };
});

type TestApp = Awaited<ReturnType<typeof startTestApp>>;
let t: TestApp;

beforeEach(async () => {
  t = await startTestApp({ LOCKS: 'retrospective,standup', MAX_CONTENT_BYTES: '1024' });
});
afterEach(async () => t.close());

const call = (path: string, init: RequestInit & { user?: string; json?: boolean } = {}) => {
  const headers = new Headers(init.headers);
  if (init.user !== undefined) headers.set('Username', init.user);
  if (init.json) headers.set('Accept', 'application/json');
  return fetch(t.url + path, { ...init, headers });
};
const avail = (user: string) => call('/retrospective/avail', { user });
const json = async (res: Response) => (await res.json()) as Record<string, unknown>;
const lockState = () => t.service.state('retrospective');

describe('the seed workflow', () => {
  it('grants, refuses with Wait, changes and releases, broadcasting the release', async () => {
    expect(await (await call('/retrospective/check')).text()).toBe('Retrospective is available.\n');
    const granted = await avail('ujjwal');
    expect(granted.status).toBe(200);
    expect(await granted.text()).toMatch(/^Access to Retrospective Granted to ujjwal \(token 1\)/);

    const wait = await avail('bob');
    expect(wait.status).toBe(423);
    expect(wait.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await wait.text()).toMatch(
      /^Wait: Retrospective is being edited by ujjwal since \d{4}-/,
    );

    const socket = await openSocket(t.url);
    const { locks } = await socket.next('snapshot');
    expect(locks).toHaveLength(2);
    // With the threshold the held-too-long alert uses, for the view to mark a long hold.
    expect(locks).toContainEqual(
      expect.objectContaining({ lock: 'retrospective', heldTooLongSeconds: 900 }),
    );
    const changed = await call('/retrospective/change', {
      method: 'POST',
      user: 'ujjwal',
      headers: { Retrospective: 'this is changed retrospective' },
    });
    expect(changed.status).toBe(200);
    expect((await call('/retrospective/release', { method: 'POST', user: 'ujjwal' })).status).toBe(
      200,
    );

    const released = await socket.next('released');
    expect(released).toMatchObject({
      lock: 'retrospective',
      content: 'this is changed retrospective',
      lastEditor: 'ujjwal',
      releasedBy: 'ujjwal',
      reason: 'released',
      token: 1,
      holder: 'ujjwal',
    });
    // The hold that ended, with its grant time (the view's timeline draws it).
    expect(released.acquiredAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    socket.close();
  });

  it('tells who you are and what you may do, for every lock or for the locks named', async () => {
    const me = async (query = '') => {
      const res = await call(`/api/me${query}`, { user: 'ana', json: true });
      return { status: res.status, body: await json(res) };
    };
    const all = await me();
    expect(all.status).toBe(200);
    expect(Object.keys(all.body.locks as object)).toEqual(['retrospective', 'standup']);
    const named = await me('?locks=standup');
    expect(named).toMatchObject({
      status: 200,
      body: { user: 'ana', locks: { standup: { view: true } } },
    });
    expect(Object.keys(named.body.locks as object)).toEqual(['standup']);
    // A name that is not a lock (say, deleted since the page listed it) is left out.
    const unknown = await me('?locks=nope,standup');
    expect(unknown.status).toBe(200);
    expect(Object.keys(unknown.body.locks as object)).toEqual(['standup']);
    expect(await me('?locks=a%0d%0ab')).toMatchObject({
      status: 400,
      body: { error: 'invalid_query' },
    });
  });

  it('answers JSON with the documented shapes when asked', async () => {
    expect(
      await json(await call('/retrospective/avail', { user: 'ana', json: true })),
    ).toMatchObject({
      lock: 'retrospective',
      status: 'granted',
      holder: 'ana',
      token: 1,
    });
    const wait = await json(await call('/retrospective/avail', { user: 'bob', json: true }));
    expect(wait).toMatchObject({
      lock: 'retrospective',
      status: 'wait',
      error: 'locked',
      holder: 'ana',
    });
    expect(wait).not.toHaveProperty('token');
    expect(
      await json(await call('/retrospective/avail', { user: 'ana', json: true })),
    ).toMatchObject({ status: 'renewed', token: 1 });
    const check = await json(await call('/retrospective/check', { json: true }));
    expect(check).toMatchObject({
      lock: 'retrospective',
      available: false,
      holder: 'ana',
      token: 1,
      content: '',
    });
    expect(check.heldSeconds).toBeTypeOf('number');
  });

  it('accepts content as a text body or as JSON, and serves the same verbs under /locks/<name>/', async () => {
    await call('/locks/standup/avail', { method: 'POST', user: 'ana' });
    await call('/locks/standup/change', {
      method: 'POST',
      user: 'ana',
      body: 'plain body',
      headers: { 'Content-Type': 'text/plain' },
    });
    expect(t.service.state('standup').content).toBe('plain body');
    await call('/locks/standup/change', {
      method: 'POST',
      user: 'ana',
      body: JSON.stringify({ retrospective: 'ünïcode ✓' }),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(t.service.state('standup').content).toBe('ünïcode ✓');
    expect(lockState().holder).toBeUndefined();
  });

  it('refuses a change before avail (409) and with a stale token (412)', async () => {
    const early = await call('/retrospective/change', {
      method: 'POST',
      user: 'ana',
      headers: { Retrospective: 'x' },
      json: true,
    });
    expect(early.status).toBe(409);
    expect(await json(early)).toMatchObject({ error: 'not_held' });
    await avail('ana');
    await call('/retrospective/release', { method: 'POST', user: 'ana' });
    await avail('ana');
    const stale = await call('/retrospective/change', {
      method: 'POST',
      user: 'ana',
      headers: { Retrospective: 'x', 'If-Match': '1' },
    });
    expect(stale.status).toBe(412);
    expect(lockState().content).toBe('');
    const fresh = await call('/retrospective/change', {
      method: 'POST',
      user: 'ana',
      headers: { Retrospective: 'y', 'If-Match': '"2"' },
    });
    expect(fresh.status).toBe(200);
  });

  it('writes and releases in one request when the release carries content, and refuses bad content without releasing', async () => {
    await avail('ana');
    const tooBig = await call('/retrospective/release', {
      method: 'POST',
      user: 'ana',
      headers: { 'Content-Type': 'text/plain' },
      body: 'x'.repeat(1025),
    });
    expect(tooBig.status).toBe(413);
    expect(lockState()).toMatchObject({ holder: 'ana', content: '' });
    const stale = await call('/retrospective/release', {
      method: 'POST',
      user: 'ana',
      headers: { Retrospective: 'lost?', 'If-Match': '7' },
    });
    expect(stale.status).toBe(412);
    expect(lockState()).toMatchObject({ holder: 'ana', content: '' });
    const socket = await openSocket(t.url);
    await socket.next('snapshot');
    const done = await call('/retrospective/release', {
      method: 'POST',
      user: 'ana',
      json: true,
      headers: { 'Content-Type': 'application/json', 'If-Match': '1' },
      body: JSON.stringify({ retrospective: 'notes, one write' }),
    });
    expect(await json(done)).toEqual({
      lock: 'retrospective',
      status: 'released',
      token: 1,
      bytes: 16,
    });
    expect(lockState()).toMatchObject({ holder: undefined, content: 'notes, one write' });
    expect(lockState().lastEditor).toBe('ana');
    const released = await socket.next('released');
    expect(released).toMatchObject({ content: 'notes, one write' });
    socket.close();
  });

  it('refuses a forced release that carries content', async () => {
    await t.close();
    t = await startTestApp({ ADMIN_USERS: 'root' });
    await avail('ana');
    const forced = await call('/retrospective/release?force=true', {
      method: 'POST',
      user: 'root',
      json: true,
      headers: { Retrospective: 'overwrite' },
    });
    expect(forced.status).toBe(400);
    expect(await json(forced)).toMatchObject({ error: 'content_with_force' });
    expect(lockState()).toMatchObject({ holder: 'ana', content: '' });
  });

  it("grants a hold with the time-to-live asked for, within the lock's bound", async () => {
    for (const bad of ['0', '-1', '1.5', 'abc', '604801'])
      expect((await call(`/retrospective/avail?ttl=${bad}`, { user: 'ana' })).status, bad).toBe(
        400,
      );
    expect(lockState().holder).toBeUndefined();
    expect((await call('/retrospective/avail?ttl=30', { user: 'ana' })).status).toBe(200);
    expect(lockState()).toMatchObject({ holder: 'ana', holdTimeoutSeconds: 30 });
  });

  it('serves metrics and probes on the admin port, and no metrics on the API port', async () => {
    expect((await call('/metrics')).status).toBe(404);
    expect((await fetch(`${t.metricsUrl}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${t.metricsUrl}/healthz`)).text()).toBe('ok\n');
    expect(await t.metricsText()).toContain('retrospective_websocket_connections');
  });

  it('counts requests by lock, action and outcome', async () => {
    await avail('ana');
    await avail('bob');
    const metrics = await t.metricsText();
    expect(metrics).toContain(
      'retrospective_lock_requests_total{lock="retrospective",action="avail",outcome="granted"} 1',
    );
    expect(metrics).toContain(
      'retrospective_lock_requests_total{lock="retrospective",action="avail",outcome="locked"} 1',
    );
    expect(metrics).toMatch(
      /retrospective_http_request_duration_seconds_count\{route="\/retrospective\/avail",method="GET",code="423"\} 1/,
    );
  });
});

describe('bad input gets a clear error and leaves the lock unchanged', () => {
  beforeEach(async () => {
    await avail('ana');
    await call('/retrospective/change', {
      method: 'POST',
      user: 'ana',
      headers: { Retrospective: 'kept' },
    });
  });
  afterEach(() => {
    expect(lockState()).toMatchObject({ holder: 'ana', content: 'kept', token: 1 });
  });

  const change = (init: RequestInit & { user?: string }) =>
    call('/retrospective/change', { method: 'POST', json: true, ...init });

  it.each([
    ['missing', undefined, 'missing_username'],
    ['empty', ' ', 'missing_username'],
    ['too long', 'a'.repeat(65), 'invalid_username'],
    ['with spaces', 'an a', 'invalid_username'],
    ['with markup', '<script>', 'invalid_username'],
  ])('a %s username is 400', async (_label, user, code) => {
    const res = await call('/retrospective/avail', { user, json: true });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: code });
  });

  it('a control character in a username never reaches the route: the HTTP parser refuses it with 400', async () => {
    const answer = await rawRequest(
      t.port,
      'POST /retrospective/release HTTP/1.1\r\nHost: x\r\nUsername: an\x01a\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1.1 400 Bad Request/);
    expect(answer).toContain('Malformed HTTP request');
  });

  it('a username the parser lets through but the rules do not (a trailing no-break space) is 400 invalid_username', async () => {
    const answer = await rawRequest(
      t.port,
      Buffer.from(
        'POST /retrospective/release HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nUsername: ana\xa0\r\nConnection: close\r\n\r\n',
        'latin1',
      ),
    );
    expect(answer).toMatch(/^HTTP\/1.1 400 Bad Request/);
    expect(answer).toContain('"error":"invalid_username"');
  });

  it('a bare CR or LF inside a header is a 400 from the HTTP parser', async () => {
    const answer = await rawRequest(
      t.port,
      'POST /retrospective/release HTTP/1.1\r\nHost: x\r\nUsername: ana\rX-Evil: 1\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1.1 400 Bad Request/);
    expect(answer).toContain('Malformed HTTP request');
  });

  it('oversized headers are 431', async () => {
    const answer = await rawRequest(
      t.port,
      `GET /retrospective/check HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1.1 431/);
  });

  it('content over the limit in the seed header is 413', async () => {
    const res = await change({ user: 'ana', headers: { Retrospective: 'a'.repeat(1025) } });
    expect(res.status).toBe(413);
    expect(await json(res)).toMatchObject({ error: 'content_too_large' });
  });

  it('a text body over the limit is 413', async () => {
    const res = await change({
      user: 'ana',
      body: 'a'.repeat(5000),
      headers: { 'Content-Type': 'text/plain' },
    });
    expect(res.status).toBe(413);
    expect(await json(res)).toMatchObject({ error: 'body_too_large' });
  });

  it('JSON content over the limit is 413 (multi-byte characters count as bytes)', async () => {
    const res = await change({
      user: 'ana',
      body: JSON.stringify({ retrospective: 'é'.repeat(513) }),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect(await json(res)).toMatchObject({ error: 'content_too_large' });
  });

  it('malformed JSON is 400', async () => {
    const res = await change({
      user: 'ana',
      body: '{"retrospective": ',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: 'malformed_json' });
  });

  it('JSON of the wrong shape is 400', async () => {
    const res = await change({
      user: 'ana',
      body: '{"notes": 1}',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: 'invalid_content' });
  });

  it('control characters in content are 400', async () => {
    const res = await change({
      user: 'ana',
      body: 'bell\u0007',
      headers: { 'Content-Type': 'text/plain' },
    });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: 'invalid_content' });
  });

  it('a change with no content is 400', async () => {
    const res = await change({ user: 'ana' });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: 'missing_content' });
  });

  it('an unknown lock is 404 and an unknown route is 404', async () => {
    const res = await call('/locks/nope/avail', { user: 'ana', json: true });
    expect(res.status).toBe(404);
    expect(await json(res)).toMatchObject({ error: 'unknown_lock' });
    expect((await call('/nowhere')).status).toBe(404);
  });

  it('a wrong method is 405 with Allow, answered before any username check', async () => {
    for (const user of ['ana', undefined]) {
      const res = await call('/retrospective/release', { user, json: true });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
      expect(await json(res)).toMatchObject({ error: 'method_not_allowed' });
    }
  });

  it('an If-Match that is not a token is 400', async () => {
    const res = await change({
      user: 'ana',
      headers: { Retrospective: 'x', 'If-Match': 'W/"abc"' },
    });
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: 'invalid_token' });
  });
});

describe('failures', () => {
  it('answer 500 without internals when something unexpected breaks', async () => {
    t.store.replace = () => Promise.reject(new Error('etcd password is hunter2'));
    const res = await call('/retrospective/avail', { user: 'ana', json: true });
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(JSON.parse(body)).toMatchObject({ error: 'internal', message: 'Internal error.' });
    expect(body).not.toContain('hunter2');
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('echo a well-formed X-Request-Id and replace a malformed one', async () => {
    const kept = await call('/retrospective/check', { headers: { 'X-Request-Id': 'trace-123' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-123');
    const replaced = await call('/retrospective/check', {
      headers: { 'X-Request-Id': 'bad id\twith tab' },
    });
    // A fresh id of our own (a UUID: "not containing 'bad'" failed when one happened to, as hex).
    expect(replaced.headers.get('x-request-id')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
  });
});

describe('the WebSocket endpoint', () => {
  it('sends a client that asked for some locks (?locks=) only their frames', async () => {
    const socket = await openSocket(t.url, { locks: 'standup' });
    const snapshot = await socket.next('snapshot');
    expect((snapshot.locks as { lock: string }[]).map((l) => l.lock)).toEqual(['standup']);
    expect((await avail('ana')).status).toBe(200); // retrospective: not asked for
    expect((await call('/locks/standup/avail', { user: 'bob' })).status).toBe(200);
    const acquired = await socket.next('acquired');
    expect(acquired).toMatchObject({ lock: 'standup', holder: 'bob' });
    expect(socket.frames.filter((f) => f.lock === 'retrospective')).toEqual([]);
    socket.close();
  });

  it('refuses ?locks= naming a lock that does not exist, or too many, with 400', async () => {
    for (const locks of [
      'nope',
      'standup,Bad',
      Array.from({ length: 101 }, () => 'standup').join(','),
    ]) {
      const res = await rawRequest(
        t.port,
        `GET /ws?locks=${locks} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      );
      expect(res, locks).toMatch(/^HTTP\/1.1 400/);
    }
  });

  it('closes a client that sends data with 1008', async () => {
    const socket = await openSocket(t.url);
    const closed = new Promise<number>((resolve) => socket.ws.on('close', resolve));
    socket.ws.send('hello');
    expect(await closed).toBe(1008);
    expect(await t.metricsText()).toContain(
      'retrospective_websocket_dropped_total{reason="client_message"} 1',
    );
  });

  it('refuses a cross-site origin and accepts its own', async () => {
    await expect(openSocket(t.url, { origin: 'http://evil.example' })).rejects.toThrow(/403/);
    const own = await openSocket(t.url, { origin: t.url });
    own.close();
  });

  it('terminates a client that stops answering pings, and keeps one that answers', async () => {
    await t.close();
    t = await startTestApp({ WS_HEARTBEAT_SECONDS: '1' });
    const silent = await openSocket(t.url);
    const healthy = await openSocket(t.url);
    // A paused socket reads no ping, so it sends no pong: to the server it is a dead peer.
    (silent.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await expect.poll(() => t.app.broadcaster.clients, { timeout: 5000 }).toBe(1);
    expect(await t.metricsText()).toContain(
      'retrospective_websocket_dropped_total{reason="heartbeat"} 1',
    );
    expect(healthy.ws.readyState).toBe(healthy.ws.OPEN);
    healthy.close();
    silent.close();
  });

  it('drops a client that never reads while others keep receiving', async () => {
    await t.close();
    t = await startTestApp({ MAX_CONTENT_BYTES: '65536', WS_MAX_BUFFERED_BYTES: '65536' });
    const slow = await openSocket(t.url);
    const healthy = await openSocket(t.url);
    const rawSocket = (slow.ws as unknown as { _socket: { pause(): void } })._socket;
    rawSocket.pause();
    const big = 'x'.repeat(60_000);
    for (let i = 0; i < 400 && t.app.broadcaster.clients > 1; i++) {
      await call('/retrospective/avail', { user: 'ana' });
      await call('/retrospective/change', {
        method: 'POST',
        user: 'ana',
        body: big,
        headers: { 'Content-Type': 'text/plain' },
      });
      await call('/retrospective/release', { method: 'POST', user: 'ana' });
    }
    expect(t.app.broadcaster.clients).toBe(1);
    expect(await t.metricsText()).toContain(
      'retrospective_websocket_dropped_total{reason="slow_consumer"} 1',
    );
    const frame = await healthy.next('released');
    expect(frame.content).toBe(big);
    healthy.close();
  });
});

describe('resuming a WebSocket', () => {
  const cycle = async (user: string) => {
    expect((await avail(user)).status).toBe(200);
    expect((await call('/retrospective/release', { method: 'POST', user })).status).toBe(200);
  };
  const released = (socket: Awaited<ReturnType<typeof openSocket>>) =>
    socket.frames.filter((f) => f.type === 'released').map((f) => [f.token, f.replayed === true]);

  it('replays the releases a reconnecting client missed, each once, before live frames', async () => {
    const first = await openSocket(t.url);
    await cycle('a');
    expect((await first.next('released')).token).toBe(1);
    first.close();
    await cycle('b');
    await cycle('c');
    const again = await openSocket(t.url, { since: 'retrospective:1' });
    await expect
      .poll(() => released(again))
      .toEqual([
        [2, true],
        [3, true],
      ]);
    await cycle('d');
    await expect
      .poll(() => released(again))
      .toEqual([
        [2, true],
        [3, true],
        [4, false],
      ]);
    expect(again.frames[0]?.type).toBe('snapshot');
    again.close();
  });

  it('replays from what the replica saw itself when the recorded history cannot be read', async () => {
    await t.close();
    // A history not read yet (a replica just started) or unreachable: every list fails.
    const unreadable: HistoryStore = {
      append: async () => undefined,
      list: () => Promise.reject(new Error('the history is not loaded yet')),
      floor: async () => 0,
      raiseFloor: async () => undefined,
    };
    t = await startTestApp({}, undefined, { history: unreadable });
    await cycle('a');
    await cycle('b');
    const again = await openSocket(t.url, { since: 'retrospective:0' });
    await expect
      .poll(() => released(again))
      .toEqual([
        [1, true],
        [2, true],
      ]);
    await cycle('c');
    await expect.poll(() => released(again)).toContainEqual([3, false]);
    again.close();
  });

  it('refuses a malformed since= in plain HTTP', async () => {
    const raw = await rawRequest(
      t.port,
      'GET /ws?since=nope:x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    expect(raw).toMatch(/each item must be <lock>:<token>/);
  });
});

describe('check without Express (the fast path)', () => {
  it('answers exactly as the Express route does, JSON and text, GET and HEAD', async () => {
    await avail('ana');
    const answer = async (accept: string | undefined, method = 'GET') => {
      const res = await call('/locks/retrospective/check', {
        method,
        headers: { ...(accept ? { Accept: accept } : {}), 'X-Request-Id': 'same' },
      });
      const headers = Object.fromEntries(
        [...res.headers].filter(([name]) => !['date', 'keep-alive', 'connection'].includes(name)),
      );
      return { status: res.status, headers, body: await res.text() };
    };
    // The first of each pair takes the fast path, the second (another Accept) goes through Express.
    expect(await answer('application/json')).toEqual(
      await answer('application/json, text/plain;q=0.1'),
    );
    expect(await answer(undefined)).toEqual(await answer('text/plain'));
    expect(await answer('*/*', 'HEAD')).toEqual(await answer('text/plain', 'HEAD'));
    expect(await t.metricsText()).toMatch(
      /retrospective_lock_requests_total\{lock="retrospective",action="check",outcome="held"\} 6/,
    );
  });
});

describe('avail and release without Express (the fast path)', () => {
  /**
   * An answer without what differs per call; `via` chooses the path by the Accept it sends (which
   * requests take the fast path is fast-commands.test.ts's to check).
   */
  const answer = async (path: string, init: RequestInit & { user?: string }, via: string) => {
    const accept = {
      'fast-json': 'application/json',
      'fast-text': undefined,
      'express-json': 'application/json, text/plain;q=0.1',
      'express-text': 'text/plain',
    }[via];
    const headers = new Headers(init.headers);
    if (accept) headers.set('Accept', accept);
    headers.set('X-Request-Id', 'same');
    const res = await call(path, { ...init, headers });
    const kept = [...res.headers].filter(
      ([name]) => !['date', 'keep-alive', 'connection'].includes(name),
    );
    return { status: res.status, headers: Object.fromEntries(kept), body: await res.text() };
  };
  /** The same request both ways, in JSON and in text: the four answers, without the path. */
  const bothWays = async (path: string, init: RequestInit & { user?: string }) => {
    const [fastJson, expressJson, fastText, expressText] = await Promise.all(
      ['fast-json', 'express-json', 'fast-text', 'express-text'].map((via) =>
        answer(path, init, via),
      ),
    );
    expect(fastJson).toEqual(expressJson);
    expect(fastText).toEqual(expressText);
    return { json: fastJson!, text: fastText! };
  };

  it('answers every refusal exactly as the Express routes do', async () => {
    await avail('ana');
    const wait = await bothWays('/retrospective/avail', { method: 'POST', user: 'bob' });
    expect(wait.json.status).toBe(423);
    expect(wait.json.headers['retry-after']).toMatch(/^\d+$/);
    expect(wait.text.body).toMatch(/^Wait: Retrospective is being edited by ana since /);
    const notYours = await bothWays('/locks/retrospective/release', {
      method: 'POST',
      user: 'bob',
    });
    expect(notYours.json.status).toBe(423);
    expect(notYours.json.body).toMatch(/"error":"locked"/);
    const badWait = await bothWays('/retrospective/avail?wait=soon', { user: 'bob' });
    expect(badWait.json.status).toBe(400);
    expect(badWait.json.body).toMatch(/invalid_wait/);
    const badForce = await bothWays('/retrospective/release?force=yes', {
      method: 'POST',
      user: 'bob',
    });
    expect(badForce.json.body).toMatch(/invalid_force/);
    const badToken = await bothWays('/retrospective/release', {
      method: 'POST',
      user: 'ana',
      headers: { 'If-Match': 'x' },
    });
    expect(badToken.json.body).toMatch(/invalid_token/);
    const nobody = await bothWays('/locks/standup/release', { method: 'POST' });
    expect(nobody.json.body).toMatch(/missing_username/);
    const unknown = await bothWays('/locks/nope/avail', { method: 'POST', user: 'bob' });
    expect(unknown.json.status).toBe(404);
    expect(unknown.json.body).toMatch(/unknown_lock/);
    expect(lockState()).toMatchObject({ holder: 'ana', token: 1 });
  });

  it('grants and releases with the same headers and body as Express, and counts them alike', async () => {
    const names = (r: { headers: Record<string, string> }) => Object.keys(r.headers).sort();
    type Answer = Awaited<ReturnType<typeof answer>>;
    const takes: { granted: Answer; released: Answer }[] = [];
    const taken: number[] = [];
    for (const via of ['fast-json', 'express-json', 'fast-text', 'express-text']) {
      const before = fastPath.taken;
      const granted = await answer('/locks/standup/avail?wait=5&ttl=60', { user: 'ana' }, via);
      const released = await answer('/locks/standup/release', { method: 'POST', user: 'ana' }, via);
      takes.push({ granted, released });
      taken.push(fastPath.taken - before);
    }
    // The fast answers came from the fast path, the others from Express.
    expect(taken).toEqual([2, 0, 2, 0]);
    const [fastJson, expressJson, fastText, expressText] = takes;
    // The same answer but for the token (one grant apart) and the times.
    const same = (body: string) => body.replace(/\d{4}-[\d-]+T[\d:.]+Z/g, 'T').replace(/\d+/g, 'n');
    const alike = (fast: (typeof takes)[number], express: (typeof takes)[number]) => {
      expect(names(fast.granted)).toEqual(names(express.granted));
      expect(names(fast.released)).toEqual(names(express.released));
      expect(fast.granted.headers['content-type']).toBe(express.granted.headers['content-type']);
      expect(same(fast.granted.body)).toBe(same(express.granted.body));
      expect(same(fast.released.body)).toBe(same(express.released.body));
    };
    alike(fastJson!, expressJson!);
    alike(fastText!, expressText!);
    expect(JSON.parse(fastJson!.granted.body)).toMatchObject({ status: 'granted', token: 1 });
    expect(fastText!.granted.body).toMatch(/^Access to Standup Granted to ana \(token 3\)/);
    const metrics = await t.metricsText();
    for (const route of ['/locks/:lock/avail', '/locks/:lock/release'])
      expect(metrics).toContain(
        `retrospective_http_request_duration_seconds_count{route="${route}",method="${route.endsWith('avail') ? 'GET' : 'POST'}",code="200"} 4`,
      );
    expect(metrics).toMatch(
      /retrospective_lock_requests_total\{lock="standup",action="release",outcome="released"\} 4/,
    );
  });

  it('grants with the token in the answer whatever validators the request sends (never 304)', async () => {
    for (const accept of ['application/json', 'text/plain']) {
      const res = await call('/locks/standup/avail', {
        user: 'ana',
        headers: {
          Accept: accept,
          'If-None-Match': '*',
          'If-Modified-Since': new Date().toUTCString(),
        },
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/token/);
    }
  });

  it('leaves the rest to Express: other methods, bodies, odd queries and paths', async () => {
    const wrongMethod = await call('/retrospective/release', { user: 'ana' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    const twice = await call('/retrospective/avail?wait=1&wait=2', { user: 'ana', json: true });
    expect(await json(twice)).toMatchObject({ error: 'invalid_wait' });
    const folded = await call('/Retrospective/Avail/', { user: 'ana', json: true });
    expect(await json(folded)).toMatchObject({ status: 'granted', token: 1 });
    const withContent = await call('/retrospective/release', {
      method: 'POST',
      user: 'ana',
      headers: { 'Content-Type': 'text/plain' },
      body: 'written as it is let go',
    });
    expect(withContent.status).toBe(200);
    expect(lockState()).toMatchObject({ holder: undefined, content: 'written as it is let go' });
  });

  it('takes a waiter out of line when its client hangs up', async () => {
    await avail('ana');
    const gone = new AbortController();
    const waiting = call('/retrospective/avail?wait=30', { user: 'bob', signal: gone.signal });
    await expect.poll(() => t.service.liveQueue(lockState()).length).toBe(1);
    gone.abort();
    await expect(waiting).rejects.toThrow();
    await expect.poll(() => t.service.liveQueue(lockState()).length).toBe(0);
    expect((await call('/retrospective/release', { method: 'POST', user: 'ana' })).status).toBe(
      200,
    );
    expect(lockState().holder).toBeUndefined();
  });
});

describe('GET /locks', () => {
  let many: TestApp;
  beforeEach(async () => {
    const names = Array.from({ length: 12 }, (_, i) => `team-${String(i).padStart(2, '0')}`);
    many = await startTestApp({ LOCKS: names.join(',') });
  });
  afterEach(async () => many.close());
  const list = async (query = '') => {
    const res = await fetch(`${many.url}/locks${query}`, {
      headers: { Accept: 'application/json' },
    });
    return {
      status: res.status,
      body: (await res.json()) as {
        locks: { lock: string; holder?: string; token?: number }[];
        continue?: string;
        error?: string;
      },
    };
  };

  it('lists every lock with its state, a page at a time, and filters by name and by hold', async () => {
    await fetch(`${many.url}/locks/team-03/avail`, { headers: { Username: 'ana' } });
    const first = await list('?limit=5');
    expect(first.body.locks.map((l) => l.lock)).toEqual([
      'team-00',
      'team-01',
      'team-02',
      'team-03',
      'team-04',
    ]);
    expect(first.body.locks[3]).toMatchObject({
      holder: 'ana',
      token: 1,
      available: false,
      waiting: 0,
    });
    const pages = [first.body.locks];
    let cursor = first.body.continue;
    while (cursor) {
      const page = await list(`?limit=5&continue=${cursor}`);
      pages.push(page.body.locks);
      cursor = page.body.continue;
    }
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect((await list('?search=-1')).body.locks.map((l) => l.lock)).toEqual([
      'team-10',
      'team-11',
    ]);
    expect((await list('?held=true')).body.locks.map((l) => l.lock)).toEqual(['team-03']);
    // A page that takes the last match has no continue, though names follow that do not match.
    const last = await list('?search=team-0&limit=10');
    expect(last.body.locks).toHaveLength(10);
    expect(last.body.continue).toBeUndefined();
    expect((await list('?search=team-0&limit=9')).body.continue).toBe('team-08');
    expect((await list('?held=false')).body.locks).toHaveLength(11);
  });

  it('refuses a limit out of range or a repeated value with 400', async () => {
    for (const query of [
      '?limit=0',
      '?limit=501',
      '?limit=x',
      '?held=yes',
      '?search=a&search=b',
      `?search=${'a'.repeat(64)}`,
    ]) {
      const { status, body } = await list(query);
      expect(status, query).toBe(400);
      expect(body.error).toMatch(/^invalid_/);
    }
  });
});
