import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LockInvalidError,
  LockTooLargeError,
  MemoryStore,
  type LockState,
  type Versioned,
} from '@retrospective/lock';
import type { Identity, Reviewer } from '../auth/authorizer.js';
import { openSocket, startTestApp } from '../testing/harness.js';

/**
 * One table of commands, sent over HTTP and over the WebSocket: both transports are adapters to
 * one pipeline, so every case must end the same way, counted the same way.
 */

type TestApp = Awaited<ReturnType<typeof startTestApp>>;
type Transport = 'http' | 'ws';

interface Case {
  readonly name: string;
  readonly env?: Record<string, string>;
  readonly kubernetes?: boolean;
  /** Commands sent before the one under test (over HTTP, as ana unless named). */
  readonly before?: readonly { verb: 'avail' | 'release'; user: string; query?: string }[];
  readonly verb: 'avail' | 'release';
  readonly lock?: string;
  /** The caller: a user name (header mode) or a token (kubernetes mode); none for anonymous. */
  readonly caller?: string;
  readonly wait?: number;
  /** What the command ends with: a success status or a refusal code. */
  readonly outcome: string;
}

const cases: Case[] = [
  { name: 'a free lock is granted', verb: 'avail', caller: 'ana', outcome: 'granted' },
  {
    name: "the holder's avail renews",
    before: [{ verb: 'avail', user: 'ana' }],
    verb: 'avail',
    caller: 'ana',
    outcome: 'renewed',
  },
  {
    name: 'someone else holds it: Wait',
    before: [{ verb: 'avail', user: 'bob' }],
    verb: 'avail',
    caller: 'ana',
    outcome: 'locked',
  },
  {
    name: 'an unknown lock',
    verb: 'avail',
    lock: 'nope',
    caller: 'ana',
    outcome: 'unknown_lock',
  },
  { name: 'no name', verb: 'avail', outcome: 'missing_username' },
  { name: 'release of a free lock', verb: 'release', caller: 'ana', outcome: 'not_held' },
  {
    name: "release of someone else's hold",
    before: [{ verb: 'avail', user: 'bob' }],
    verb: 'release',
    caller: 'ana',
    outcome: 'locked',
  },
  {
    name: 'a user over the per-user limit',
    env: { RATE_LIMIT_USER_PER_MINUTE: '2' },
    before: [
      { verb: 'avail', user: 'ana' },
      { verb: 'release', user: 'ana' },
    ],
    verb: 'avail',
    caller: 'ana',
    outcome: 'rate_limited',
  },
  {
    name: 'an address over the per-address limit',
    env: { RATE_LIMIT_ADDRESS_PER_MINUTE: '2' },
    before: [
      { verb: 'avail', user: 'bob' },
      { verb: 'release', user: 'bob' },
    ],
    verb: 'avail',
    caller: 'ana',
    outcome: 'rate_limited',
  },
  {
    name: 'a second place in line for one user',
    env: { WAIT_MAX_SECONDS: '5' },
    before: [
      { verb: 'avail', user: 'bob' },
      { verb: 'avail', user: 'ana', query: '?wait=5' },
    ],
    verb: 'avail',
    caller: 'ana',
    wait: 5,
    outcome: 'waiting_limit',
  },
  {
    name: 'a full line',
    env: { WAIT_MAX_SECONDS: '5', WAIT_QUEUE_MAX: '1' },
    before: [
      { verb: 'avail', user: 'bob' },
      { verb: 'avail', user: 'carol', query: '?wait=5' },
    ],
    verb: 'avail',
    caller: 'ana',
    wait: 5,
    outcome: 'queue_full',
  },
  {
    name: 'a viewer may not hold (kubernetes mode)',
    kubernetes: true,
    verb: 'avail',
    caller: 'viewer',
    outcome: 'forbidden',
  },
  {
    name: 'an editor may (kubernetes mode)',
    kubernetes: true,
    verb: 'avail',
    caller: 'editor',
    outcome: 'granted',
  },
];

const reviewer: Reviewer = {
  reviewToken: async (token: string): Promise<Identity | undefined> =>
    ['viewer', 'editor'].includes(token) ? { user: token, groups: [] } : undefined,
  mayAccess: async (who, verb) => verb === 'get' || (who.user === 'editor' && verb === 'hold'),
};

let t: TestApp;
afterEach(async () => t.close());

async function send(transport: Transport, c: Case): Promise<string> {
  const lock = c.lock ?? 'retrospective';
  if (transport === 'http') {
    const credentials: Record<string, string> = c.caller
      ? c.kubernetes
        ? { Authorization: `Bearer ${c.caller}` }
        : { Username: c.caller }
      : {};
    const res = await fetch(`${t.url}/locks/${lock}/${c.verb}${c.wait ? `?wait=${c.wait}` : ''}`, {
      method: 'POST',
      headers: { Accept: 'application/json', ...credentials },
    });
    const body = (await res.json()) as { error?: string; status?: string };
    return body.error ?? body.status ?? `HTTP ${res.status}`;
  }
  const who = c.kubernetes ? { token: c.caller ?? 'viewer' } : c.caller ? { user: c.caller } : {};
  const socket = await openSocket(t.url, who);
  socket.ws.send(JSON.stringify({ type: c.verb, lock, ...(c.wait ? { wait: c.wait } : {}) }));
  const reply = (await socket.next('reply', 8000)) as { error?: string; status?: string };
  socket.close();
  return reply.error ?? reply.status ?? 'no outcome';
}

describe.each<Transport>(['http', 'ws'])('one pipeline, over %s', (transport) => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    t = await startTestApp(
      { ...(c.kubernetes ? { AUTH_MODE: 'kubernetes' } : {}), ...c.env },
      c.kubernetes ? reviewer : undefined,
    );
    for (const step of c.before ?? []) {
      const pending = fetch(`${t.url}/retrospective/${step.verb}${step.query ?? ''}`, {
        method: 'POST',
        headers: { Username: step.user },
      });
      // A wait in line stays open: go on once its caller is in line.
      if (step.query?.includes('wait')) {
        void pending.catch(() => undefined);
        await expect
          .poll(() => t.service.state('retrospective').queue?.some((w) => w.user === step.user))
          .toBe(true);
      } else await pending;
    }
    expect(await send(transport, c)).toBe(c.outcome);
    const label = c.lock && c.lock !== 'retrospective' ? '_unknown' : 'retrospective';
    expect(await t.metricsText()).toContain(
      `retrospective_lock_requests_total{lock="${label}",action="${c.verb}",outcome="${c.outcome}"} 1`,
    );
  });
});

/** A store that refuses every write with `refuse` while it is set, as a Lease gone bad would. */
class RefusingStore extends MemoryStore {
  refuse: Error | undefined;
  override async replace(next: LockState, base: Versioned): Promise<Versioned | 'conflict'> {
    if (this.refuse) throw this.refuse;
    return super.replace(next, base);
  }
}

describe.each<Transport>(['http', 'ws'])(
  'a lock its store refuses to write, over %s',
  (transport) => {
    it('answers 503 lock_invalid or lock_too_large, counts each, and logs each once a minute per lock', async () => {
      const lines: { msg: string; lock?: string; code?: string; err?: { message?: string } }[] = [];
      const logger = pino(
        { level: 'warn' },
        { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
      );
      const store = new RefusingStore();
      t = await startTestApp({}, undefined, { store, logger });
      const avail: Case = { name: 'avail', verb: 'avail', caller: 'ana', outcome: '' };
      store.refuse = new LockInvalidError('retrospective', 'spec.leaseTransitions: Invalid value');
      expect(await send(transport, avail)).toBe('lock_invalid');
      expect(await send(transport, avail)).toBe('lock_invalid');
      store.refuse = new LockTooLargeError(
        'retrospective',
        'its annotations would take 300000 bytes',
      );
      expect(await send(transport, avail)).toBe('lock_too_large');
      const logged = lines.filter((l) => l.msg === 'the lock cannot be written');
      expect(logged.map((l) => [l.lock, l.code])).toEqual([
        ['retrospective', 'lock_invalid'],
        ['retrospective', 'lock_too_large'],
      ]);
      expect(logged[0]?.err?.message).toMatch(/spec.leaseTransitions: Invalid value/);
      const metrics = await t.metricsText();
      for (const [outcome, n] of [
        ['lock_invalid', 2],
        ['lock_too_large', 1],
      ] as const)
        expect(metrics).toContain(
          `retrospective_lock_requests_total{lock="retrospective",action="avail",outcome="${outcome}"} ${n}`,
        );
      store.refuse = undefined;
      expect(await send(transport, avail)).toBe('granted');
    });
  },
);
