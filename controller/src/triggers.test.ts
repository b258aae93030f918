import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryHistory, type LockState } from '@retrospective/lock';
import type { EventRecorder } from './events.js';
import { createControllerMetrics } from './metrics.js';
import { recordChange } from './triggers.js';

const at = (iso: string) => new Date(`2026-11-23T10:${iso}.000Z`);
const held: LockState = {
  name: 'retrospective',
  holder: 'ana',
  acquiredAt: at('00:00'),
  renewedAt: at('00:00'),
  token: 3,
  content: 'notes',
};
const released: LockState = {
  ...held,
  holder: undefined,
  acquiredAt: undefined,
  renewedAt: undefined,
  releasedBy: 'ana',
  releasedAt: at('01:00'),
  releaseReason: 'released',
};

describe('what the leader records for a change', () => {
  it('keeps the history and the token floor when the Event cannot be created (EventRateLimit, quota)', async () => {
    const history = new MemoryHistory(10);
    const refused: string[] = [];
    const events: EventRecorder = {
      record: async (_lock, _type, reason) => {
        refused.push(reason);
        throw Object.assign(new Error('429 Too Many Requests'), { code: 429 });
      },
    };
    const deps = {
      events,
      history,
      metrics: createControllerMetrics({ locks: ['retrospective'], heldTooLongSeconds: 900 }),
      logger: pino({ level: 'silent' }),
    };
    await recordChange(deps, {
      name: 'retrospective',
      prev: { ...released, token: 2 },
      next: held,
    });
    await recordChange(deps, { name: 'retrospective', prev: held, next: released });
    expect(refused).toEqual(['Acquired', 'Released']);
    expect(await history.list('retrospective')).toMatchObject([
      {
        token: 3,
        releasedBy: 'ana',
        reason: 'released',
        content: 'notes',
        // The hold that ended: who and since when (the timeline of the view draws it).
        holder: 'ana',
        acquiredAt: '2026-11-23T10:00:00.000Z',
      },
    ]);
    expect(await history.floor('retrospective')).toBe(3);
  });

  it('records a hand-over nobody took up without a holder or grant time: it was never held', async () => {
    const history = new MemoryHistory(10);
    const deps = {
      events: { record: async () => undefined },
      history,
      metrics: createControllerMetrics({ locks: ['retrospective'], heldTooLongSeconds: 900 }),
      logger: pino({ level: 'silent' }),
    };
    const handedOver: LockState = { ...held, holder: 'bob', unclaimedSeconds: 3 };
    await recordChange(deps, {
      name: 'retrospective',
      prev: handedOver,
      next: { ...released, releasedBy: 'controller', releaseReason: 'expired' },
    });
    const [entry] = await history.list('retrospective');
    expect(entry).toMatchObject({ reason: 'expired', token: 3 });
    expect(entry).not.toHaveProperty('holder');
    expect(entry).not.toHaveProperty('acquiredAt');
  });

  it('stops, without recording more, once its term of leadership ends', async () => {
    const history = new MemoryHistory(10);
    const term = new AbortController();
    const events: EventRecorder = {
      record: async () => {
        term.abort();
        throw new DOMException('aborted', 'AbortError');
      },
    };
    const deps = {
      events,
      history,
      metrics: createControllerMetrics({ locks: ['retrospective'], heldTooLongSeconds: 900 }),
      logger: pino({ level: 'silent' }),
    };
    await expect(
      recordChange(
        deps,
        { name: 'retrospective', prev: held, next: released },
        {
          signal: term.signal,
        },
      ),
    ).rejects.toThrow('aborted');
    expect(await history.list('retrospective')).toEqual([]);
  });
});
