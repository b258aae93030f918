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
      WAIT_LINE_FORM: 'short',
      LOG_LEVEL: 'info',
    });
    expect(loadConfig({ WAIT_LINE_FORM: 'objects' }).WAIT_LINE_FORM).toBe('objects');
    expect(() => loadConfig({ WAIT_LINE_FORM: 'arrays' })).toThrow(/WAIT_LINE_FORM/);
  });

  it('caps connections above the WebSocket clients', () => {
    expect(loadConfig({}).HTTP_MAX_CONNECTIONS).toBe(5000);
    expect(loadConfig({ WS_MAX_CONNECTIONS: '20000' }).HTTP_MAX_CONNECTIONS).toBe(24000);
    expect(loadConfig({ HTTP_MAX_CONNECTIONS: '300', WS_MAX_CONNECTIONS: '200' })).toMatchObject({
      HTTP_MAX_CONNECTIONS: 300,
      WS_MAX_CONNECTIONS: 200,
    });
    expect(() => loadConfig({ HTTP_MAX_CONNECTIONS: '1000' })).toThrow(
      /HTTP_MAX_CONNECTIONS: WebSocket clients hold connections too/,
    );
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

  it('refuses limits whose worst case would not fit in a Lease (256 KiB of annotations)', () => {
    expect(() =>
      loadConfig({ MAX_CONTENT_BYTES: String(200 * 1024), WAIT_QUEUE_MAX: '100' }),
    ).toThrow(/WAIT_QUEUE_MAX: MAX_CONTENT_BYTES \+ WAIT_QUEUE_MAX x 440 must stay under/);
    expect(
      loadConfig({ MAX_CONTENT_BYTES: String(200 * 1024), WAIT_QUEUE_MAX: '88' }),
    ).toMatchObject({ WAIT_QUEUE_MAX: 88 });
    expect(() => loadConfig({ WAIT_QUEUE_MAX: '10000' })).toThrow(/WAIT_QUEUE_MAX/);
    expect(() => loadConfig({ WAIT_QUEUE_MAX: '2', WAIT_QUEUE_MAX_PER_USER: '3' })).toThrow(
      /WAIT_QUEUE_MAX_PER_USER/,
    );
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
