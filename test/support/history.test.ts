import { describe, expect, it } from 'vitest';
import { checkHistory, type Op } from './history.ts';

const op = (o: Partial<Op> & Pick<Op, 'client' | 'kind' | 'start' | 'end'>): Op => ({
  status: 200,
  ...o,
});
const cycle = (client: string, token: number, at: number, content: string): Op[] => [
  op({ client, kind: 'avail', start: at, end: at + 1, token, outcome: 'granted' }),
  op({ client, kind: 'change', start: at + 2, end: at + 3, token, content }),
  op({ client, kind: 'release', start: at + 4, end: at + 5, token }),
];

describe('the history checker', () => {
  it('accepts a correct history', () => {
    const ops = [...cycle('a', 1, 0, 'a1'), ...cycle('b', 2, 10, 'b2')];
    expect(
      checkHistory(ops, [
        { token: 1, content: 'a1' },
        { token: 2, content: 'b2' },
      ]),
    ).toEqual([]);
  });

  it('finds a token granted twice', () => {
    const ops = [...cycle('a', 1, 0, 'a'), ...cycle('b', 1, 10, 'b')];
    expect(checkHistory(ops, []).join()).toMatch(/token 1 granted twice/);
  });

  it('finds two holders at once', () => {
    const ops = [...cycle('a', 1, 0, 'a'), ...cycle('b', 2, 2, 'b')];
    expect(checkHistory(ops, []).join()).toMatch(/began after token 2 was granted/);
  });

  it('finds tokens that go backwards in real time', () => {
    const ops = [...cycle('a', 2, 0, 'a'), ...cycle('b', 1, 10, 'b')];
    expect(checkHistory(ops, []).join()).toMatch(/finished before grant 1/);
  });

  it('finds a lost edit', () => {
    const ops = [...cycle('a', 1, 0, 'mine')];
    expect(checkHistory(ops, [{ token: 1, content: 'someone else' }]).join()).toMatch(
      /expected "mine"/,
    );
  });

  it('finds a holder refused its own release', () => {
    const ops = [
      ...cycle('a', 1, 0, 'a'),
      op({ client: 'a', kind: 'release', start: 6, end: 7, token: 1, status: 412 }),
    ];
    expect(checkHistory(ops, []).join()).toMatch(/refused its release/);
  });

  it('takes a request that got no answer (its replica died) as maybe applied, not refused', () => {
    const ops = [
      ...cycle('a', 1, 0, 'acknowledged'),
      op({ client: 'a', kind: 'change', start: 3, end: 4, token: 1, content: 'lost', status: -1 }),
    ];
    expect(checkHistory(ops, [{ token: 1, content: 'lost' }])).toEqual([]);
    expect(checkHistory(ops, [{ token: 1, content: 'acknowledged' }])).toEqual([]);
    expect(checkHistory(ops, [{ token: 1, content: 'other' }]).join()).toMatch(
      /expected "acknowledged" or "lost"/,
    );
  });

  it('takes a release that got no answer as the release, if it was sent before the next grant', () => {
    const unanswered = (start: number): Op[] => [
      op({ client: 'a', kind: 'avail', start: 0, end: 1, token: 1, outcome: 'granted' }),
      op({ client: 'a', kind: 'release', start, end: start + 1, token: 1, status: -1 }),
      op({ client: 'b', kind: 'avail', start: 5, end: 6, token: 2, outcome: 'granted' }),
    ];
    expect(checkHistory(unanswered(3), [])).toEqual([]);
    expect(checkHistory(unanswered(7), []).join()).toMatch(/token 1 \(a\) was never released/);
  });
});
