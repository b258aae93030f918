import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../metrics.js';
import { fastCommands } from './fast-commands.js';
import type { CommandCall } from './routes.js';

/** The fast path with a runner that only records what it was asked to run. */
function fastPath() {
  const calls: CommandCall[] = [];
  const handle = fastCommands(
    async (_req, _res, call) => void calls.push(call),
    createMetrics({ locks: [] }),
    pino({ level: 'silent' }),
  );
  const take = (method: string, url: string, headers: Record<string, string> = {}) => {
    const req = { method, url, headers } as unknown as IncomingMessage;
    const res = Object.assign(new EventEmitter(), {
      setHeader: () => undefined,
    }) as unknown as ServerResponse;
    return handle(req, res);
  };
  return { take, calls };
}

describe('which requests skip Express', () => {
  it('takes avail and release with a plain query, no body and a plain Accept', () => {
    const { take, calls } = fastPath();
    expect(take('POST', '/retrospective/avail')).toBe(true);
    expect(take('GET', '/locks/team-a/avail?wait=60&ttl=30', { accept: 'application/json' })).toBe(
      true,
    );
    expect(take('POST', '/locks/team-a/release?force=true', { accept: '*/*' })).toBe(true);
    expect(take('POST', '/retrospective/release', { 'content-length': '0' })).toBe(true);
    // Values the readers refuse still take it: the same runner answers 400 either way.
    expect(take('POST', '/retrospective/avail?wait=soon')).toBe(true);
    expect(calls.map(({ verb, lock, query }) => ({ verb, lock, query }))).toEqual([
      { verb: 'avail', lock: 'retrospective', query: {} },
      { verb: 'avail', lock: 'team-a', query: { wait: '60', ttl: '30' } },
      { verb: 'release', lock: 'team-a', query: { force: 'true' } },
      { verb: 'release', lock: 'retrospective', query: {} },
      { verb: 'avail', lock: 'retrospective', query: { wait: 'soon' } },
    ]);
    expect(calls.map((c) => c.json())).toEqual([false, true, false, false, false]);
    expect(calls.every((c) => c.content === undefined && c.requestId.length > 0)).toBe(true);
  });

  it('leaves everything else to Express', () => {
    const { take, calls } = fastPath();
    const others: [string, string, Record<string, string>?][] = [
      ['GET', '/retrospective/release'],
      ['PUT', '/retrospective/avail'],
      ['HEAD', '/retrospective/avail'],
      ['POST', '/retrospective/change'],
      ['GET', '/retrospective/check'],
      ['POST', '/Retrospective/avail'],
      ['POST', '/retrospective/avail/'],
      ['POST', '/locks/Team/avail'],
      ['POST', '/locks/a%2Db/avail'],
      ['POST', `/locks/${'a'.repeat(64)}/avail`],
      ['POST', '/retrospective/avail?wait=1&wait=2'],
      ['POST', '/retrospective/avail?wait=1&other=2'],
      ['POST', '/retrospective/avail?wait=%31'],
      ['POST', '/retrospective/avail?wait'],
      ['POST', '/retrospective/avail', { accept: 'text/plain' }],
      ['POST', '/retrospective/avail', { accept: 'application/json, */*' }],
      ['POST', '/retrospective/release', { 'content-length': '5' }],
      ['POST', '/retrospective/release', { 'transfer-encoding': 'chunked' }],
      ['POST', '/retrospective/release', { retrospective: 'new text' }],
      ['POST', '/retrospective/release', { 'content-length': '0', 'content-encoding': 'gzip' }],
    ];
    for (const [method, url, headers] of others) expect(take(method, url, headers)).toBe(false);
    expect(calls).toEqual([]);
  });
});
