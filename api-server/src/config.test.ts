import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('api-server configuration', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({ NAMESPACE: 'ops' })).toMatchObject({
      PORT: 9090,
      STORE: 'memory',
      NAMESPACE: 'ops',
      LOCKS: ['retrospective'],
      AUTH_MODE: 'header',
      USERNAME_HEADER: 'Username',
      MAX_CONTENT_BYTES: 32768,
      HOLD_TIMEOUT_SECONDS: 0,
      LOG_LEVEL: 'info',
    });
  });

  it('parses lists and treats empty variables as unset', () => {
    const config = loadConfig({
      LOCKS: ' retrospective, standup ',
      PORT: '',
      ALLOWED_ORIGINS: 'https://ops.example.com',
    });
    expect(config.LOCKS).toEqual(['retrospective', 'standup']);
    expect(config.PORT).toBe(9090);
    expect(config.ALLOWED_ORIGINS).toEqual(['https://ops.example.com']);
  });

  it('lists every problem at once', () => {
    const error = (() => {
      try {
        loadConfig({
          PORT: 'http',
          STORE: 'redis',
          LOCKS: 'Bad_Name',
          MAX_CONTENT_BYTES: '999999999',
          USERNAME_HEADER: 'a b',
        });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.split(':')[0])).toEqual(
      expect.arrayContaining(['PORT', 'STORE', 'LOCKS.0', 'MAX_CONTENT_BYTES', 'USERNAME_HEADER']),
    );
  });
});
