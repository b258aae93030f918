import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('controller configuration', () => {
  it("has client-go's leader-election defaults and the documented thresholds", () => {
    const config = loadConfig({ NAMESPACE: 'ops', POD_NAME: 'ctl-0' });
    expect(config.IDENTITY).toMatch(/^ctl-0_\d+$/);
    expect(config).toMatchObject({
      LEADER_ELECTION_LEASE_DURATION_SECONDS: 15,
      LEADER_ELECTION_RENEW_DEADLINE_SECONDS: 10,
      LEADER_ELECTION_RETRY_PERIOD_SECONDS: 2,
      HELD_TOO_LONG_SECONDS: 900,
      HISTORY_SIZE: 50,
      METRICS_PORT: 8081,
    });
  });

  it('refuses leader-election timings that cannot work', () => {
    expect(() =>
      loadConfig({
        LEADER_ELECTION_LEASE_DURATION_SECONDS: '5',
        LEADER_ELECTION_RENEW_DEADLINE_SECONDS: '10',
      }),
    ).toThrow(ConfigError);
    expect(() => loadConfig({ LEADER_ELECTION_RETRY_PERIOD_SECONDS: '10' })).toThrow(
      /renew deadline must be greater/,
    );
  });
});
