import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

describe('per-lock metric series', () => {
  it('appear, at 0, when a lock is followed and are all removed when it is forgotten', async () => {
    const metrics = createMetrics({ locks: ['kept'] });
    metrics.follow('team-a');
    metrics.lockRequests.inc({ lock: 'team-a', action: 'avail', outcome: 'granted' });
    metrics.lockRequests.inc({ lock: 'kept', action: 'avail', outcome: 'granted' });
    metrics.waitDuration.observe({ lock: 'team-a', outcome: 'granted' }, 1);
    const lines = async () =>
      (await metrics.registry.metrics()).split('\n').filter((l) => l.includes('lock="team-a"'));
    expect((await lines()).length).toBeGreaterThan(10);
    expect(await lines()).toContain(
      'retrospective_lock_races_total{lock="team-a",action="avail"} 0',
    );

    metrics.forget('team-a');
    expect(await lines()).toEqual([]);
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      'retrospective_lock_requests_total{lock="kept",action="avail",outcome="granted"} 1',
    );
    expect(text).toContain('retrospective_lock_queue_length{lock="kept"} 0');
  });

  it('start the grants and releases the dashboard reads at 0, so a first release is an increase', async () => {
    const text = await createMetrics({ locks: ['kept'] }).registry.metrics();
    for (const [action, outcome] of [
      ['avail', 'granted'],
      ['release', 'released'],
      ['release', 'forced'],
    ])
      expect(text).toContain(
        `retrospective_lock_requests_total{lock="kept",action="${action}",outcome="${outcome}"} 0`,
      );
  });
});
