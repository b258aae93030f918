import { LineSightings, LockContendedError, LockService, type Waiter } from '@retrospective/lock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FaultyStore } from '../testing/stores.js';
import { LineWriter } from './line-writer.js';

const lock = 'retrospective';
let store: FaultyStore;
let service: LockService;
let writer: LineWriter;
let errors: unknown[];
let leftOut: string[];
/** The monotonic clock of the service's sightings: a test moves it to make entries lapse. */
let now: number;
let renewals: Waiter[];
let maxWaiters: number;

const waiter = (user: string): Waiter => {
  const now = new Date();
  return {
    id: `${user}-request`,
    user,
    since: now,
    expires: new Date(now.getTime() + 15_000),
    ttlSeconds: 15,
    beat: 0,
    takesHandOver: true,
  };
};
const release = (user: string) =>
  service.execute(lock, { kind: 'release', user }, { rider: writer.carry() });
/** Writes made while `fn` runs and for a little longer (a line write to a short line waits 10 ms). */
const writesDuring = async (fn: () => Promise<unknown>) => {
  const before = store.writes;
  await fn();
  await new Promise((r) => setTimeout(r, 250));
  return store.writes - before;
};

beforeEach(async () => {
  store = new FaultyStore();
  await store.ensure([lock]);
  now = 0;
  service = new LockService({ store, locks: [lock], sightings: new LineSightings(() => now) });
  errors = [];
  leftOut = [];
  renewals = [];
  maxWaiters = 10;
  writer = new LineWriter({
    lock,
    service,
    renewals: () => renewals,
    serial: (fn) => fn(),
    limits: () => ({ maxWaiters, maxPerUser: 1 }),
    onLeftOut: (ids) => leftOut.push(...ids),
    onError: (error) => errors.push(error),
  });
  expect((await service.execute(lock, { kind: 'avail', user: 'ana' })).ok).toBe(true);
});

describe('line changes ride in a holder write of the same replica', () => {
  it('hands the lock to a join waiting to be written in the release itself: one write', async () => {
    const joined = writer.join(waiter('bob'));
    let result: Awaited<ReturnType<typeof release>> | undefined;
    expect(await writesDuring(async () => (result = await release('ana')))).toBe(1);
    expect(result).toMatchObject({
      ok: true,
      outcome: 'released',
      state: { holder: 'bob', token: 2, grantedTo: 'bob-request' },
    });
    // Admitted: the state it was handed the lock in.
    expect(await joined).toMatchObject({ holder: 'bob', grantedTo: 'bob-request' });
    expect(service.state(lock).queue).toBeUndefined();
  });

  it('takes a leaving waiter out before the release, so it is not handed the lock', async () => {
    await writer.join(waiter('bob'));
    expect(service.state(lock).queue?.map((w) => w.user)).toEqual(['bob']);
    writer.leave(['bob-request']);
    expect(await writesDuring(() => release('ana'))).toBe(1);
    expect(service.state(lock)).toMatchObject({ holder: undefined, queue: undefined });
  });

  it('gives the changes back when the command is refused: the writer writes them itself', async () => {
    const joined = writer.join(waiter('bob'));
    let refused: Awaited<ReturnType<typeof release>> | undefined;
    expect(await writesDuring(async () => (refused = await release('carol')))).toBe(1);
    expect(refused).toMatchObject({ ok: false, refusal: { code: 'locked' } });
    expect((await joined)?.queue?.map((w) => w.user)).toEqual(['bob']);
    expect(service.state(lock).holder).toBe('ana');
    expect(errors).toEqual([]);
  });

  it('carries nothing when nothing waits to be written', () => {
    expect(writer.carry()).toBeUndefined();
  });

  it('carries nothing while a line write is in flight, so a leave never lands before its join', async () => {
    const open = store.gate((next) => next.holder === 'ana' && !!next.queue?.length);
    void writer.join(waiter('bob'));
    await expect.poll(() => store.held, { timeout: 2000, interval: 5 }).toBe(1);
    writer.leave(['bob-request']);
    expect(writer.carry()).toBeUndefined();
    expect((await release('ana')).ok).toBe(true);
    open();
    await writer.idle();
    // The join lost its compare-and-swap to the release and landed after it; the leave after that.
    expect(service.state(lock)).toMatchObject({ holder: undefined, queue: undefined });
  });

  it('puts back a lapsed entry it renews in the release, which then hands it the lock', async () => {
    await writer.join(waiter('bob'));
    now += 20_000; // bob's entry lapses (15 s), as after an outage of his replica
    renewals = [{ ...waiter('bob'), beat: 1 }];
    writer.renewAll();
    const result = await release('ana');
    expect(result).toMatchObject({ ok: true, state: { holder: 'bob', grantedTo: 'bob-request' } });
    expect(leftOut).toEqual([]);
  });

  it('fits a join into the place the release frees when the line is full', async () => {
    maxWaiters = 1;
    await writer.join(waiter('bob'));
    const carol = writer.join(waiter('carol'));
    expect(await writesDuring(() => release('ana'))).toBe(1);
    expect(service.state(lock)).toMatchObject({ holder: 'bob' });
    expect((await carol)?.queue?.map((w) => w.user)).toEqual(['carol']);
  });

  it('writes a join again when every attempt lost its compare-and-swap, rather than failing it', async () => {
    // More lost races in a row than one command tries (20): a line write between hand-overs.
    let lost = 0;
    store.conflictWrite = (next) => next.queue !== undefined && ++lost <= 25;
    const joined = await writer.join(waiter('bob'));
    expect(lost).toBeGreaterThan(25);
    expect(joined?.queue?.map((w) => w.user)).toEqual(['bob']);
    expect(errors).toEqual([expect.any(LockContendedError)]);
  });

  it('stops writing a join that keeps losing once the replica stops, and fails it then', async () => {
    store.conflictWrite = (next) => next.queue !== undefined;
    const joined = writer.join(waiter('bob'));
    const failed = expect(joined).rejects.toBeInstanceOf(LockContendedError);
    await new Promise((r) => setTimeout(r, 300));
    await writer.idle();
    await failed;
    const writes = store.writes;
    await new Promise((r) => setTimeout(r, 300));
    expect(store.writes).toBe(writes);
  });

  it('is not idle while a batch is out with a command', async () => {
    void writer.join(waiter('bob'));
    const rider = writer.carry();
    let idle = false;
    void writer.idle().then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 150));
    expect(idle).toBe(false);
    rider?.done(undefined);
    await expect.poll(() => idle, { timeout: 2000, interval: 5 }).toBe(true);
    expect(service.state(lock).queue?.map((w) => w.user)).toEqual(['bob']);
  });
});

describe('waiting for a ride', () => {
  /** Three others already in line: a long line, so joins wait for a release to carry them. */
  beforeEach(async () => {
    for (const user of ['bob', 'carol', 'dave'])
      expect(await writer.join(waiter(user))).toBeDefined();
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('holds a join while the line is long, and writes it at once when nudged (the line ran nearly dry)', async () => {
    const before = store.writes;
    const joined = writer.join(waiter('erin'));
    await vi.advanceTimersByTimeAsync(400);
    expect(store.writes).toBe(before);
    writer.nudge();
    await vi.advanceTimersByTimeAsync(20);
    expect(store.writes).toBe(before + 1);
    expect((await joined)?.queue?.map((w) => w.user)).toEqual(['bob', 'carol', 'dave', 'erin']);
  });

  it('writes a join carried by nothing after the carry window, and renewals alone sooner', async () => {
    const before = store.writes;
    const joined = writer.join(waiter('erin'));
    await vi.advanceTimersByTimeAsync(510);
    expect(await joined).toBeDefined();
    expect(store.writes).toBe(before + 1);
    renewals = [waiter('bob')];
    writer.renewAll();
    await vi.advanceTimersByTimeAsync(110);
    expect(store.writes).toBe(before + 2);
  });
});
