import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2Session } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig, loopbackTlsKubeConfig } from '../testing/loopback.js';
import { loopbackCert, loopbackKey } from '../testing/loopback-tls.js';
import { getJson, jsonRequest, putLease, watchJson } from './json-request.js';
import { decodeLease, encodeLease, protobuf, Undecodable } from './lease-proto.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const tls = { cert: loopbackCert, key: loopbackKey };

/**
 * The scripted API server over each way a call can reach it: plain HTTP (undici), HTTP/2 over TLS
 * (http2.ts, as kube-apiserver is reached), and TLS without HTTP/2 (http2.ts turned down in the
 * handshake, then undici). Each server speaks only its own protocol; the 505s are a second guard.
 */
const transports: [string, (handler: Handler) => Promise<KubeConfig>][] = [
  [
    'HTTP/1.1',
    (handler) => {
      const server = createServer(handler);
      cleanups.push(() => server.close());
      return loopbackKubeConfig(server);
    },
  ],
  [
    'HTTP/2 over TLS',
    (handler) => {
      const server = createSecureServer(tls, (req, res) => {
        if (req.httpVersion !== '2.0') return void res.writeHead(505).end();
        handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
      });
      const sessions: Http2Session[] = [];
      server.on('session', (session) => sessions.push(session));
      cleanups.push(() => {
        sessions.forEach((session) => session.destroy());
        server.close();
      });
      return loopbackTlsKubeConfig(server);
    },
  ],
  [
    'TLS without HTTP/2',
    (handler) => {
      const server = createHttpsServer(tls, (req, res) => {
        if (req.httpVersion !== '1.1') return void res.writeHead(505).end();
        handler(req, res);
      });
      cleanups.push(() => {
        server.closeAllConnections();
        server.close();
      });
      return loopbackTlsKubeConfig(server);
    },
  ],
];

let serve: (handler: Handler) => Promise<KubeConfig>;

const never = new AbortController().signal;

describe.each(transports)('over %s', (_name, how) => {
  beforeEach(() => {
    serve = how;
  });

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

  describe('getJson', () => {
    it('reads the object as the server sent it, with the query and the credentials; a refusal as an ApiException', async () => {
      let url = '';
      let headers: IncomingMessage['headers'] = {};
      const kc = await serve((req, res) => {
        url = req.url ?? '';
        headers = req.headers;
        if (url.includes('missing'))
          res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"code":404}');
        else res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"spec":{"new":1}}');
      });
      kc.users[0] = { name: 'test', token: 'secret-token' };
      const query = { fieldSelector: 'metadata.name=a b' };
      expect(await getJson(kc, '/apis/x/leases', query, never)).toEqual({ spec: { new: 1 } });
      expect(url).toBe('/apis/x/leases?fieldSelector=metadata.name%3Da+b');
      expect(headers).toMatchObject({
        authorization: 'Bearer secret-token',
        'user-agent': 'retrospective',
        accept: 'application/json',
      });
      const error = await getJson(kc, '/apis/x/missing', {}, never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApiException);
      expect(error).toMatchObject({ code: 404 });
    });
  });

  describe('putLease', () => {
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'l', resourceVersion: '5', annotations: { a: 'é' } },
      spec: { holderIdentity: 'ana', leaseTransitions: 2 },
    };

    /** A server that answers with `answer` and records what came. */
    async function recording(answer: (body: Buffer) => [number, string, Buffer | string]) {
      const seen: { type?: string | undefined; accept?: string | undefined; body?: Buffer } = {};
      const kc = await serve((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          Object.assign(seen, {
            type: req.headers['content-type'],
            accept: req.headers.accept,
            body: Buffer.concat(chunks),
          });
          const [status, type, body] = answer(Buffer.concat(chunks));
          res.writeHead(status, { 'Content-Type': type }).end(body);
        });
      });
      return { kc, seen };
    }

    it('sends the Lease in protobuf, asks for protobuf, and decodes the answer', async () => {
      const { kc, seen } = await recording((body) => [200, protobuf, body]);
      expect(await putLease(kc, '/l', lease, never)).toEqual(lease);
      expect(seen.type).toBe(protobuf);
      expect(seen.accept).toBe(`${protobuf}, application/json`);
      expect(decodeLease(seen.body!)).toEqual(lease);
    });

    it('sends JSON a Lease with a key the encoder does not know, and reads a JSON answer', async () => {
      const odd = { ...lease, metadata: { ...lease.metadata, brandNew: 'x' } };
      const { kc, seen } = await recording((body) => [200, 'application/json', body]);
      expect(await putLease(kc, '/l', odd, never)).toEqual(odd);
      expect(seen.type).toBe('application/json');
    });

    it('sends the update again as JSON to a server that turns protobuf down, and JSON from then on', async () => {
      const { kc, seen } = await recording((body) =>
        body[0] === 0x6b
          ? [415, 'text/plain', 'no protobuf here']
          : [200, 'application/json', body],
      );
      expect(await putLease(kc, '/l', lease, never)).toEqual(lease);
      expect(seen.type).toBe('application/json');
      seen.type = undefined;
      expect(await putLease(kc, '/l', lease, never)).toEqual(lease);
      expect(seen.type).toBe('application/json');
    });

    it('fails a write whose protobuf answer is not a Lease once, and sends JSON after', async () => {
      const { kc, seen } = await recording((body) =>
        body[0] === 0x6b
          ? [200, protobuf, Buffer.from('garbage')]
          : [200, 'application/json', body],
      );
      await expect(putLease(kc, '/l', lease, never)).rejects.toThrow(Undecodable);
      expect(await putLease(kc, '/l', lease, never)).toEqual(lease);
      expect(seen.type).toBe('application/json');
    });

    it('reports a protobuf refusal as an ApiException with the JSON Status text', async () => {
      const { kc } = await recording(() => [409, protobuf, Buffer.from('not a status')]);
      const error = await putLease(kc, '/l', lease, never).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 409, body: 'not a status' });
      expect(encodeLease(lease)).toBeDefined();
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
      const kc = await serve((req, res) => {
        if (req.url === '/warm') return void res.writeHead(200).end('{}');
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
      // A connection made first: a TLS handshake on a busy machine may take the idle time itself.
      await getJson(kc, '/warm', {}, never);
      const events: unknown[] = [];
      await watchJson(kc, '/w', {}, (_type, object) => events.push(object), never, 100);
      expect(events).toHaveLength(8);
    });
  });
});
