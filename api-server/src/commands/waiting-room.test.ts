import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSocket, startTestApp } from '../testing/harness.js';
import { FaultyStore } from '../testing/stores.js';

/** The app over a store whose faults each test turns on (none by default: a MemoryStore). */
let t: Awaited<ReturnType<typeof startTestApp<FaultyStore>>>;
let store: FaultyStore;
let stop: (() => Promise<void>) | undefined;
/** Starts the app (again, with `env`: a test may replace the one beforeEach started). */
const start = async (env: Record<string, string> = {}) => {
  await stop?.();
  store = new FaultyStore();
  t = await startTestApp({ WAIT_MAX_SECONDS: '30', ...env }, undefined, { store });
  stop = t.close;
};
beforeEach(() => start());
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

const post = (path: string, user: string, signal?: AbortSignal) =>
  fetch(`${t.url}${path}`, {
    method: 'POST',
    headers: { Username: user, Accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
const state = () => t.service.state('retrospective');
const line = () => (t.store.cached('retrospective')?.state.queue ?? []).map((w) => w.user);
const holder = () => t.store.cached('retrospective')?.state.holder;
/**
 * Holds back ana's release (which hands the lock to bob) and bob's leaving the line, so that the
 * hand-over lands after bob left but before his leave is written: the race a hand-back is for.
 */
const holdHandOverAndLeave = () => ({
  handOver: store.gate((next) => next.holder === 'bob'),
  leave: store.gate((next) => next.holder === 'ana' && !(next.queue ?? []).length),
});
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

  it('answers a waiter of its own replica from the write that hands it the lock, not from the watch', async () => {
    // No heartbeat in this test's time (a third of the TTL): it would look at the lock too.
    await start({ WAIT_QUEUE_TTL_SECONDS: '300' });
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=10', 'bob');
    await until(() => state().queue?.length === 1);
    const deliver = store.lagWatch();
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    // Nothing came on the watch yet: the answer came from the release's own write.
    const first = await Promise.race([bob, new Promise((r) => setTimeout(r, 5000, 'no answer'))]);
    expect(first).toBeInstanceOf(Response);
    expect(await (await bob).json()).toMatchObject({ status: 'granted', holder: 'bob', token: 2 });
    const writes = store.writes;
    deliver();
    // The watch's late news of the same grant is not taken for a second one: nothing handed back.
    await new Promise((r) => setTimeout(r, 100));
    expect([holder(), state().token, store.writes]).toEqual(['bob', 2, writes]);
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

describe('the line under faults', () => {
  it('answers a waiter whose time runs out while the Lease is missing (503), and one who leaves then', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=1', 'bob');
    const gone = new AbortController();
    const carol = post('/retrospective/avail?wait=10', 'carol', gone.signal).catch(() => 'left');
    await until(() => line().length === 2);
    store.hide('retrospective'); // kubectl delete lease, the controller not there yet
    gone.abort();
    expect(await carol).toBe('left');
    const answer = await bob;
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ error: 'not_provisioned' });
    await store.restore('retrospective');
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
  });

  it('puts back a waiter whose entry was dropped, and serves it when the lock is free', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().length === 1);
    // Another replica judged the entry lapsed (an outage, a stalled event loop) and dropped it.
    await store.rewrite('retrospective', (s) => ({ ...s, queue: undefined }));
    await until(() => line().join() === 'bob');
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect(await (await bob).json()).toMatchObject({ status: 'granted', holder: 'bob' });
  });

  it('serves a waiter after its Lease was deleted and made again (empty, with a higher token)', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().length === 1);
    store.hide('retrospective');
    await store.restore('retrospective', (s) => ({
      name: s.name,
      token: s.token + 1,
      content: '',
    }));
    const answer = await bob;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ holder: 'bob', token: 3 });
  });

  it('hands back, retrying until it succeeds, a hand-over that landed as its caller left', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const gone = new AbortController();
    const bob = post('/retrospective/avail?wait=20', 'bob', gone.signal).catch(() => 'left');
    await until(() => line().length === 1);
    // Ana's release, which hands the lock to bob, is slow to land; bob leaves meanwhile; the
    // first hand-backs fail.
    const { handOver, leave } = holdHandOverAndLeave();
    let failures = 0;
    store.failWrite = (next) => next.releasedBy === 'bob' && failures++ < 3;
    const released = post('/retrospective/release', 'ana');
    await until(() => store.held === 1);
    gone.abort();
    expect(await bob).toBe('left');
    await until(() => store.held === 2);
    handOver();
    expect((await released).status).toBe(200);
    leave();
    await expect.poll(() => failures, { timeout: 5000 }).toBeGreaterThanOrEqual(4);
    await until(() => holder() === undefined);
    expect(t.store.cached('retrospective')?.state).toMatchObject({ releasedBy: 'bob' });
  });

  it('hands the lock to the head of the line in the releasing write; its waiter is answered with no write of its own', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().length === 1);
    store.writes = 0;
    const released = await post('/retrospective/release', 'ana');
    expect(await released.json()).toMatchObject({ status: 'released', token: 1 });
    const answer = await bob;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ status: 'granted', holder: 'bob', token: 2 });
    expect(store.writes).toBe(1);
    expect(t.store.cached('retrospective')?.state).toMatchObject({
      holder: 'bob',
      releasedBy: 'ana',
      queue: undefined,
    });
  });

  it('writes short random ids in the line and the grant (their bytes go with every hand-over)', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().length === 1);
    const carol = post('/retrospective/avail?wait=20', 'carol');
    await until(() => line().length === 2);
    const ids = (t.store.cached('retrospective')?.state.queue ?? []).map((w) => w.id);
    // 72 random bits each, base64url: distinct, and a third of a UUID's 36 characters.
    expect(ids).toEqual([
      expect.stringMatching(/^[\w-]{12}$/),
      expect.stringMatching(/^[\w-]{12}$/),
    ]);
    expect(new Set(ids).size).toBe(2);
    await post('/retrospective/release', 'ana');
    expect((await bob).status).toBe(200);
    expect(t.store.cached('retrospective')?.state.grantedTo).toBe(ids[0]);
    await post('/retrospective/release', 'bob');
    expect((await carol).status).toBe(200);
  });

  it('takes up a hand-over when the new holder writes, and otherwise confirms it in a third of its time', async () => {
    await start({ WAIT_QUEUE_TTL_SECONDS: '3' });
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().length === 1);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect((await bob).status).toBe(200);
    expect(t.store.cached('retrospective')?.state.unclaimedSeconds).toBe(3);
    // Bob idles: his replica tells the controller he took it up, about a second later.
    await until(() => t.store.cached('retrospective')?.state.unclaimedSeconds === undefined);
    const carol = post('/retrospective/avail?wait=20', 'carol');
    await until(() => line().length === 1);
    expect((await post('/retrospective/release', 'bob')).status).toBe(200);
    expect((await carol).status).toBe(200);
    // Carol writes at once: that takes it up, and no confirmation is needed.
    const change = await fetch(`${t.url}/retrospective/change`, {
      method: 'POST',
      headers: { Username: 'carol', Retrospective: 'mine' },
    });
    expect(change.status).toBe(200);
    expect(t.store.cached('retrospective')?.state.unclaimedSeconds).toBeUndefined();
  });

  it('gives one user one place in a line (429), whichever route they wait on', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const first = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().length === 1);
    const again = await post('/locks/retrospective/avail?wait=20', 'bob');
    expect(again.status).toBe(429);
    expect(await again.json()).toMatchObject({ error: 'waiting_limit' });
    expect(line()).toEqual(['bob']);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect((await first).status).toBe(200);
  });

  it('joins a burst of 40 waiters in a number of writes linear in them, and the holder still releases', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    store.latencyMs = 3; // writers overlap and conflict, as against an API server
    store.writes = 0;
    const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const waits = users.map((u) => post('/retrospective/avail?wait=20', u));
    await until(() => line().length === 40);
    const joinWrites = store.writes;
    console.info(`40 waiters joined in ${joinWrites} writes`);
    expect(joinWrites).toBeLessThan(40);
    const release = await post('/retrospective/release', 'ana');
    expect(release.status).toBe(200);
    // Each hands it on at once; every waiter is served exactly once, in line order.
    const order: string[] = [];
    await Promise.all(
      waits.map(async (w, i) => {
        const answer = await w;
        expect(answer.status).toBe(200);
        order.push(users[i]!);
        expect((await post('/retrospective/release', users[i]!)).status).toBe(200);
      }),
    );
    expect(order).toHaveLength(40);
  }, 30_000);

  it('refuses waits once the room has stopped (the replica is shutting down)', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    await t.app.room.stop();
    const started = performance.now();
    const bob = await post('/retrospective/avail?wait=10', 'bob');
    expect(bob.status).toBe(503);
    expect(await bob.json()).toMatchObject({ error: 'shutting_down' });
    expect(performance.now() - started).toBeLessThan(2000);
    const zoe = await openSocket(t.url, { user: 'zoe' });
    zoe.ws.send(JSON.stringify({ type: 'avail', lock: 'retrospective', wait: 10, id: 'z' }));
    expect(await zoe.next('reply')).toMatchObject({ id: 'z', ok: false, error: 'shutting_down' });
    zoe.close();
    // While it drains, what needs no waiting is still served.
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect((await post('/retrospective/avail', 'bob')).status).toBe(200);
  });
});

describe('the line under faults, as a reviewer tried it', () => {
  it('answers a dropped waiter that finds no place to come back to, without rewriting the line again and again', async () => {
    await start({ WAIT_QUEUE_MAX: '2' });
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    const carol = post('/retrospective/avail?wait=20', 'carol');
    await until(() => line().length === 2);
    // Bob's entry lapsed (another replica dropped it) and eve, waiting on another replica, took
    // the last place meanwhile.
    const now = Date.now();
    const eve = {
      id: 'eve-elsewhere',
      user: 'eve',
      since: new Date(now),
      expires: new Date(now + 60_000),
      ttlSeconds: 60,
      beat: 1,
    };
    await store.rewrite('retrospective', (s) => ({
      ...s,
      queue: [...(s.queue ?? []).filter((w) => w.user !== 'bob'), eve],
    }));
    store.writes = 0;
    const answer = await bob;
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ error: 'queue_full' });
    await new Promise((r) => setTimeout(r, 300));
    expect(store.writes).toBeLessThan(5);
    expect(line()).toEqual(['carol', 'eve']);
    await store.rewrite('retrospective', (s) => ({ ...s, queue: s.queue?.slice(0, 1) }));
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect((await carol).status).toBe(200);
  });

  it('hands back a grant whose caller hung up while it was being written (no wait)', async () => {
    store.latencyMs = 200;
    const gone = new AbortController();
    const bob = post('/retrospective/avail', 'bob', gone.signal).catch(() => 'left');
    await new Promise((r) => setTimeout(r, 50));
    gone.abort();
    expect(await bob).toBe('left');
    await until(() => t.store.cached('retrospective')?.state.releasedBy === 'bob');
    expect(t.store.cached('retrospective')?.state.holder).toBeUndefined();
  });

  it('hands back a plain grant whose answer was lost, once the watch shows it landed', async () => {
    store.loseAnswer = (next) => next.holder === 'bob';
    const bob = await post('/retrospective/avail', 'bob');
    expect(bob.status).toBe(503);
    store.loseAnswer = undefined;
    await until(() => t.store.cached('retrospective')?.state.releasedBy === 'bob');
    expect(holder()).toBeUndefined();
  });

  it('takes out an entry whose join was written though its answer was lost', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    store.loseAnswer = (next) => (next.queue ?? []).some((w) => w.user === 'bob');
    const bob = await post('/retrospective/avail?wait=20', 'bob');
    expect(bob.status).toBe(503);
    store.loseAnswer = undefined;
    await until(() => line().length === 0);
  });

  it('writes a leave that failed during an outage once the API server answers again', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const gone = new AbortController();
    const bob = post('/retrospective/avail?wait=20', 'bob', gone.signal).catch(() => 'left');
    await until(() => line().join() === 'bob');
    store.failWrite = (next) => next.holder === 'ana' && !(next.queue ?? []).length;
    gone.abort();
    expect(await bob).toBe('left');
    await new Promise((r) => setTimeout(r, 300));
    expect(line()).toEqual(['bob']);
    store.failWrite = undefined;
    // Nothing else writes the line: the leave is retried on its own.
    await expect.poll(line, { timeout: 4000 }).toEqual([]);
  });

  it('cuts a WebSocket wait to WAIT_MAX_SECONDS rather than closing the socket', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const zoe = await openSocket(t.url, { user: 'zoe' });
    zoe.ws.send(JSON.stringify({ type: 'avail', lock: 'retrospective', wait: 86_400, id: 'z' }));
    expect(await zoe.next('queue')).toMatchObject({ waiting: [{ user: 'zoe' }] });
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect(await zoe.next('reply')).toMatchObject({ id: 'z', ok: true, status: 'granted' });
    zoe.close();
  });
});

describe('a hand-back and a new request of the same user', () => {
  it("leaves the hold to the user's new request when it claimed the hold first", async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const first = new AbortController();
    const bob = post('/retrospective/avail?wait=20', 'bob', first.signal).catch(() => 'left');
    await until(() => line().join() === 'bob');
    const [waiter] = t.store.cached('retrospective')?.state.queue ?? [];
    // Ana's release, handing the lock to bob, is slow to land; he gives up meanwhile and asks
    // again at once.
    expect(waiter?.user).toBe('bob');
    const { handOver, leave } = holdHandOverAndLeave();
    const released = post('/retrospective/release', 'ana');
    await until(() => store.held === 1);
    first.abort();
    expect(await bob).toBe('left');
    await until(() => store.held === 2);
    handOver();
    expect((await released).status).toBe(200);
    await until(() => holder() === 'bob');
    // His new request is told he holds the lock: the hold is his again...
    const again = await post('/retrospective/avail', 'bob');
    expect(await again.json()).toMatchObject({ status: 'renewed', holder: 'bob', token: 2 });
    // ...so the hand-back of the grant to the request he left finds it claimed, and leaves it.
    leave();
    await new Promise((r) => setTimeout(r, 200));
    expect(holder()).toBe('bob');
    const change = await fetch(`${t.url}/retrospective/change`, {
      method: 'POST',
      headers: { Username: 'bob', 'If-Match': '2', Retrospective: 'mine' },
    });
    expect(change.status).toBe(200);
  });

  it('hands back the grant when no new request claimed it', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const first = new AbortController();
    const bob = post('/retrospective/avail?wait=20', 'bob', first.signal).catch(() => 'left');
    await until(() => line().join() === 'bob');
    const { handOver, leave } = holdHandOverAndLeave();
    const released = post('/retrospective/release', 'ana');
    await until(() => store.held === 1);
    first.abort();
    expect(await bob).toBe('left');
    await until(() => store.held === 2);
    handOver();
    expect((await released).status).toBe(200);
    leave();
    await until(() => t.store.cached('retrospective')?.state.releasedBy === 'bob');
    expect(holder()).toBeUndefined();
  });
});

describe('a line write that loses its compare-and-swap', () => {
  it('never puts back a waiter that was handed the lock while it retried', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().join() === 'bob');
    const carol = post('/retrospective/avail?wait=20', 'carol');
    await until(() => line().join() === 'bob,carol');
    const [bobs] = t.store.cached('retrospective')?.state.queue ?? [];
    // Renewing both (carol's entry went missing) is held back; meanwhile ana's release hands the
    // lock to bob, who is answered and lets go.
    const renewal = store.gate(
      (next) => next.holder === 'ana' && (next.queue ?? []).some((w) => w.user === 'carol'),
    );
    await store.rewrite('retrospective', (s) => ({
      ...s,
      queue: s.queue?.filter((w) => w.user !== 'carol'),
    }));
    await until(() => store.held === 1);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect((await bob).status).toBe(200);
    expect((await post('/retrospective/release', 'bob')).status).toBe(200);
    renewal();
    // The renewal lost its compare-and-swap and was decided again, without bob.
    expect((await carol).status).toBe(200);
    expect(t.store.cached('retrospective')?.state.queue?.map((w) => w.id) ?? []).not.toContain(
      bobs?.id,
    );
    expect((await post('/retrospective/release', 'carol')).status).toBe(200);
    expect(holder()).toBeUndefined();
  });
});

describe('a waiter whose writes lose every race (other writers take every version)', () => {
  it('stays in line when its join loses more compare-and-swaps than one write tries, and is served', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    let lost = 0;
    store.conflictWrite = (next) =>
      (next.queue ?? []).some((w) => w.user === 'bob') && next.holder === 'ana' && ++lost <= 25;
    const bob = post('/retrospective/avail?wait=20', 'bob');
    await until(() => line().join() === 'bob');
    expect(lost).toBeGreaterThan(25);
    expect((await post('/retrospective/release', 'ana')).status).toBe(200);
    expect(await (await bob).json()).toMatchObject({ status: 'granted', holder: 'bob' });
  });

  it('answers a holder renewing with a wait 503 when its renewal loses them all: never puts it in line', async () => {
    expect((await post('/retrospective/avail', 'ana')).status).toBe(200);
    store.conflictWrite = (next) => next.holder === 'ana';
    const renewal = await post('/retrospective/avail?wait=20', 'ana');
    expect(renewal.status).toBe(503);
    expect(await renewal.json()).toMatchObject({ error: 'store_unavailable' });
    expect([holder(), line()]).toEqual(['ana', []]);
  });

  it('joins the line when its grant of a free lock loses them all, rather than answering 503', async () => {
    let lost = 0;
    store.conflictWrite = (next) => next.holder === 'bob' && !next.queue?.length && ++lost <= 25;
    const bob = await post('/retrospective/avail?wait=20', 'bob');
    expect(bob.status).toBe(200);
    expect(await bob.json()).toMatchObject({ status: 'granted', holder: 'bob' });
    expect(lost).toBeGreaterThan(20);
  });
});
