import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSocket, startTestApp } from '../testing/harness.js';

type TestApp = Awaited<ReturnType<typeof startTestApp>>;
let t: TestApp;
beforeEach(async () => {
  t = await startTestApp({ WAIT_MAX_SECONDS: '30' });
});
afterEach(async () => t.close());

const post = (path: string, user: string, signal?: AbortSignal) =>
  fetch(`${t.url}${path}`, {
    method: 'POST',
    headers: { Username: user, Accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
const state = () => t.service.state('retrospective');
const until = async (done: () => boolean) => {
  await expect.poll(done, { timeout: 5000, interval: 10 }).toBe(true);
};

describe('avail?wait=', () => {
  it('answers the moment the lock is handed over, in the order callers joined the line', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const socket = await openSocket(t.url);
    const bob = post('/retrospective/avail?wait=10', 'bob');
    await until(() => state().queue?.length === 1);
    const carol = post('/locks/retrospective/avail?wait=10', 'carol');
    await until(() => state().queue?.length === 2);
    expect(await (await post('/retrospective/avail', 'dave')).json()).toMatchObject({
      error: 'locked',
    });
    expect(await socket.next('queue')).toMatchObject({ waiting: [{ user: 'bob' }] });
    const check = (await (
      await fetch(`${t.url}/retrospective/check`, { headers: { Accept: 'application/json' } })
    ).json()) as { waiting: { user: string }[] };
    expect(check.waiting.map((w) => w.user)).toEqual(['bob', 'carol']);

    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    const bobs = await bob;
    expect(bobs.status).toBe(200);
    expect(await bobs.json()).toMatchObject({ status: 'granted', holder: 'bob', token: 2 });
    // Free for a moment between bob's release and carol's grant, but dave is not first in line.
    expect((await post('/retrospective/release', 'bob')).status).toBe(200);
    expect(await (await carol).json()).toMatchObject({ holder: 'carol', token: 3 });
    expect(state().queue).toBeUndefined();
    expect(await t.metricsText()).toMatch(
      /retrospective_lock_wait_duration_seconds_count\{lock="retrospective",outcome="granted"\} 2/,
    );
    socket.close();
  });

  it('answers Wait when the time runs out, and leaves the line', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const started = performance.now();
    const bob = await post('/retrospective/avail?wait=1', 'bob');
    expect(bob.status).toBe(423);
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
    await until(() => state().queue === undefined);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect(state().holder).toBeUndefined();
  });

  it('never hands the lock to a caller who went away', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const gone = new AbortController();
    const bob = post('/retrospective/avail?wait=10', 'bob', gone.signal).catch(() => 'aborted');
    await until(() => state().queue?.length === 1);
    gone.abort();
    expect(await bob).toBe('aborted');
    await until(() => state().queue === undefined);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    expect(state().holder).toBeUndefined();
    expect((await post('/retrospective/avail', 'carol')).status).toBe(200);
  });

  it('refuses a wait that is not a number of seconds', async () => {
    const res = await post('/retrospective/avail?wait=soon', 'bob');
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_wait' });
  });

  it('works as a WebSocket command too, answered with a reply frame', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const zoe = await openSocket(t.url, { user: 'zoe' });
    zoe.ws.send(JSON.stringify({ type: 'avail', lock: 'retrospective', wait: 10, id: 'a1' }));
    expect(await zoe.next('queue')).toMatchObject({ waiting: [{ user: 'zoe' }] });
    zoe.ws.send(JSON.stringify({ type: 'release', lock: 'retrospective', id: 'r0' }));
    expect(await zoe.next('reply')).toMatchObject({ id: 'r0', ok: false, error: 'busy' });
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect(await zoe.next('reply')).toMatchObject({ id: 'a1', ok: true, status: 'granted' });
    expect(state().holder).toBe('zoe');
    zoe.ws.send(JSON.stringify({ type: 'release', lock: 'retrospective', id: 'r1' }));
    expect(await zoe.next('reply')).toMatchObject({ id: 'r1', ok: true, status: 'released' });
    expect(state().holder).toBeUndefined();

    const anonymous = await openSocket(t.url);
    anonymous.ws.send(JSON.stringify({ type: 'avail', lock: 'retrospective', id: 'x' }));
    expect(await anonymous.next('reply')).toMatchObject({ ok: false, error: 'missing_username' });
    anonymous.ws.send(JSON.stringify({ type: 'avail', lock: 'nope' }));
    expect(await anonymous.next('reply')).toMatchObject({ ok: false });
    zoe.close();
    anonymous.close();
  });
});
