import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ApiException } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig } from '../testing/loopback.js';
import { jsonRequest, watchJson } from './json-request.js';

const servers: ReturnType<typeof createServer>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  servers.push(server);
  return loopbackKubeConfig(server);
}

const never = new AbortController().signal;

describe('jsonRequest', () => {
  it('sends the object as JSON with the credentials, and parses the answer', async () => {
    let seen: { method?: string; url?: string; auth?: string; agent?: string; body: string } = {
      body: '',
    };
    const kc = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const { method, url, headers } = req;
        seen = { method, url, auth: headers.authorization, agent: headers['user-agent'], body };
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"answer":"é"}');
      });
    });
    kc.users[0] = { name: 'test', token: 'secret-token' };
    const answer = await jsonRequest(kc, 'PUT', '/apis/x/leases/l', { a: 1 }, never);
    expect(answer).toEqual({ answer: 'é' });
    expect(seen).toEqual({
      method: 'PUT',
      url: '/apis/x/leases/l',
      auth: 'Bearer secret-token',
      agent: 'retrospective',
      body: '{"a":1}',
    });
  });

  it('reports a refusal as the generated API does: an ApiException with its status and body', async () => {
    const status = '{"kind":"Status","reason":"Conflict","code":409}';
    const kc = await serve((req, res) => {
      req.resume();
      res.writeHead(409, { 'Content-Type': 'application/json' }).end(status);
    });
    const error = await jsonRequest(kc, 'PUT', '/x', {}, never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiException);
    expect(error).toMatchObject({ code: 409, body: status });
  });
});

describe('watchJson', () => {
  it('delivers each event line, whole characters across chunks, the last one without its newline, skipping lines that are not events', async () => {
    const line = JSON.stringify({ type: 'MODIFIED', object: { name: 'é€😀' } }) + '\n';
    // The last one without its newline (the server ended the watch right after it).
    const odd = '{"type":"MODIFIED"}\n{"type":"ADDED","object":null}\n';
    const bytes = Buffer.from(line + 'not json\n' + odd + line.trimEnd());
    const kc = await serve((req, res) => {
      expect(new URL(req.url ?? '', 'http://x').searchParams.get('watch')).toBe('true');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      // In pieces cut inside every multi-byte character, a moment apart so none are joined.
      const cuts = [...bytes.keys()].filter((k) => (bytes[k] ?? 0) >= 0xc0).map((k) => k + 1);
      const pieces = [0, ...cuts].map((from, n) => bytes.subarray(from, cuts[n] ?? bytes.length));
      const next = () => {
        const piece = pieces.shift();
        if (!piece) return void res.end();
        res.write(piece);
        setTimeout(next, 20);
      };
      next();
    });
    const events: [string, unknown][] = [];
    await watchJson(kc, '/w', {}, (type, object) => events.push([type, object]), never);
    expect(events).toEqual([
      ['MODIFIED', { name: 'é€😀' }],
      ['MODIFIED', { name: 'é€😀' }],
    ]);
  });

  it('ends with a TimeoutError when the watch says nothing for the idle time, and with an ApiException on a refusal', async () => {
    const kc = await serve((req, res) => {
      // A blank line first: the watch has begun when it falls silent.
      if (req.url?.startsWith('/quiet')) return void res.writeHead(200).write('\n');
      res.writeHead(403).end('{"kind":"Status","code":403}');
    });
    const quiet = await watchJson(kc, '/quiet', {}, () => undefined, never, 100).catch(
      (e: unknown) => e,
    );
    expect(quiet).toMatchObject({ name: 'TimeoutError' });
    const refused = await watchJson(kc, '/refused', {}, () => undefined, never).catch(
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ code: 403 });
  });

  it('keeps a watch that speaks within every idle time, however long it lasts', async () => {
    const kc = await serve((_req, res) => {
      res.writeHead(200);
      // Every 50 ms for 400 ms, against an idle time of 100 ms: the wait starts again each time.
      let sent = 0;
      const beat = setInterval(() => {
        if (++sent > 8) {
          clearInterval(beat);
          return void res.end();
        }
        res.write(JSON.stringify({ type: 'MODIFIED', object: { n: sent } }) + '\n');
      }, 50);
    });
    const events: unknown[] = [];
    await watchJson(kc, '/w', {}, (_type, object) => events.push(object), never, 100);
    expect(events).toHaveLength(8);
  });
});
