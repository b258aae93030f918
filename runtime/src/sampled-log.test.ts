import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SampledLog } from './sampled-log.js';

describe('SampledLog', () => {
  it('logs a message once per interval and reports how many it held back', () => {
    const lines: { msg: string; suppressed?: number }[] = [];
    const logger = pino(
      { level: 'warn' },
      { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    let now = 0;
    const log = new SampledLog(logger, 60_000, () => now);
    for (let i = 0; i < 1000; i++) log.warn('TokenReview failed');
    log.warn('SubjectAccessReview failed');
    now = 60_000;
    log.warn('TokenReview failed');
    expect(lines.map((l) => [l.msg, l.suppressed])).toEqual([
      ['TokenReview failed', undefined],
      ['SubjectAccessReview failed', undefined],
      ['TokenReview failed', 999],
    ]);
  });

  it('samples per key when given one: one lock does not hide another', () => {
    const lines: { msg: string; lock?: string }[] = [];
    const logger = pino(
      { level: 'warn' },
      { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    const log = new SampledLog(logger, 60_000, () => 0);
    for (const lock of ['a', 'a', 'b', 'a', 'b'])
      log.warn('the lock cannot be written', { lock }, lock);
    expect(lines.map((l) => l.lock)).toEqual(['a', 'b']);
  });
});
