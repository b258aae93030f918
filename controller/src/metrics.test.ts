import { describe, expect, it } from 'vitest';
import { createControllerMetrics } from './metrics.js';

describe("the controller's per-lock series", () => {
  it('start at 0 when a lock is followed (so its first long hold is an increase) and go when it is forgotten', async () => {
    const metrics = createControllerMetrics({ locks: [], heldTooLongSeconds: 900 });
    const text = () => metrics.registry.metrics();
    expect(await text()).not.toContain('lock="team-a"');
    metrics.follow('team-a');
    expect(await text()).toContain('retrospective_lock_long_holds_total{lock="team-a"} 0');
    metrics.longHolds.inc({ lock: 'team-a' });
    metrics.holdDuration.observe({ lock: 'team-a' }, 3);
    metrics.follow('team-b', 60);
    metrics.forget('team-a');
    expect(await text()).not.toContain('lock="team-a"');
    expect(await text()).toContain('retrospective_lock_expirations_total{lock="team-b"} 0');
    // Each lock's own held-too-long threshold, for the alerts; changed with its policy.
    expect(await text()).toContain(
      'retrospective_lock_held_too_long_threshold_seconds{lock="team-b"} 60',
    );
    metrics.follow('team-b', 120);
    expect(await text()).toContain(
      'retrospective_lock_held_too_long_threshold_seconds{lock="team-b"} 120',
    );
  });
});
