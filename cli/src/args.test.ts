import { describe, expect, it } from 'vitest';
import { lockName, parseDuration, UsageError } from './args.js';
import { age, table } from './show.js';

describe('durations', () => {
  it.each([
    ['30', 30],
    ['30s', 30],
    ['5m', 300],
    ['1h30m', 5400],
    ['500ms', 0.5],
    ['1.5m', 90],
    ['2h0m5s', 7205],
  ])('reads %s as %d s', (text, seconds) => {
    expect(parseDuration(text, '--wait')).toBe(seconds);
  });

  it.each(['', '5 minutes', '1d', '-3s', '3s ', 's', '5m x', '1e3s'])(
    'refuses "%s", naming the flag',
    (text) => {
      expect(() => parseDuration(text, '--ttl')).toThrow(UsageError);
      expect(() => parseDuration(text, '--ttl')).toThrow(/--ttl takes a duration/);
    },
  );
});

describe('lock names', () => {
  it('accepts a DNS label and refuses anything else with the rule', () => {
    expect(lockName('team-a', 'lock')).toBe('team-a');
    expect(() => lockName(undefined, 'lock')).toThrow(/lock needs a lock name/);
    for (const bad of ['Team', 'a.b', '-a', 'a'.repeat(64), '../x'])
      expect(() => lockName(bad, 'lock')).toThrow(/lowercase letters, digits and dashes/);
  });
});

describe('tables', () => {
  it('pads columns as kubectl does, with no trailing spaces', () => {
    expect(
      table(
        ['NAME', 'HOLDER', 'TOKEN'],
        [
          ['retrospective', '', '9'],
          ['deploy', 'ci-bot', '17'],
        ],
      ),
    ).toBe(
      'NAME            HOLDER   TOKEN\nretrospective            9\ndeploy          ci-bot   17\n',
    );
  });

  it('says ages in the largest whole unit, as kubectl does', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    const ago = (s: number) => new Date(now - s * 1000).toISOString();
    expect([5, 119, 120, 7199, 7200, 172_800].map((s) => age(ago(s), now))).toEqual([
      '5s',
      '119s',
      '2m',
      '119m',
      '2h',
      '2d',
    ]);
    expect(age(undefined, now)).toBe('');
  });
});
