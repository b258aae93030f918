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
});
