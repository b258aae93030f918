import { createServer } from 'node:http';
import {
  constants,
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig, loopbackTlsKubeConfig } from '../testing/loopback.js';
import { loopbackCert, loopbackKey } from '../testing/loopback-tls.js';
import { http2For } from './http2.js';
import { getJson, watchJson } from './json-request.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const never = new AbortController().signal;

/** An HTTP/2 server over TLS that records its sessions and what each client offered in ALPN. */
async function h2Server(handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void) {
  const offered: string[][] = [];
  const sessions: Http2Session[] = [];
  const server = createSecureServer(
    {
      cert: loopbackCert,
      key: loopbackKey,
      ALPNCallback: ({ protocols }) => {
        offered.push(protocols);
        return protocols.includes('h2') ? 'h2' : undefined;
      },
    },
    handler,
  );
  server.on('session', (session) => sessions.push(session));
  cleanups.push(() => {
    sessions.forEach((session) => session.destroy());
    server.close();
  });
  const kc = await loopbackTlsKubeConfig(server);
  kc.users[0] = { name: 'test', token: 'secret-token' };
  return { kc, offered, sessions };
}

const json = (res: Http2ServerResponse, body: unknown) =>
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

describe('the HTTP/2 connection to the API server', () => {
  it('is for an https server reached directly: not plain HTTP, not through a proxy', async () => {
    const plain = createServer();
    cleanups.push(() => plain.close());
    expect(await http2For(await loopbackKubeConfig(plain))).toBeUndefined();
    const proxied = new KubeConfig();
    proxied.loadFromClusterAndUser(
      {
        name: 'c',
        server: 'https://10.0.0.1',
        skipTLSVerify: false,
        proxyUrl: 'http://proxy:3128',
      },
      { name: 'u' },
    );
    expect(await http2For(proxied)).toBeUndefined();
    const { kc } = await h2Server((_req, res) => json(res, {}));
    expect(await http2For(kc)).toBeDefined();
  });

  it('carries every call over one connection it opened itself (ALPN h2 only), with the credentials', async () => {
    const auth: (string | undefined)[] = [];
    const { kc, offered, sessions } = await h2Server((req, res) => {
      auth.push(req.headers.authorization);
      if (req.url.includes('watch=true')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ type: 'ADDED', object: { n: 1 } }) + '\n');
      }
      json(res, { n: auth.length });
    });
    expect(await getJson(kc, '/a', {}, never)).toEqual({ n: 1 });
    const events: unknown[] = [];
    await watchJson(kc, '/w', {}, (_type, object) => events.push(object), never);
    expect(await getJson(kc, '/b', {}, never)).toEqual({ n: 3 });
    expect(events).toEqual([{ n: 1 }]);
    expect(auth).toEqual(Array(3).fill('Bearer secret-token'));
    // undici offers http/1.1 first: only this transport offers h2 alone.
    expect([offered, sessions.length]).toEqual([[['h2']], 1]);
  });

  it('opens a new connection for the next call when the server ended the last one', async () => {
    const { kc, sessions } = await h2Server((_req, res) => json(res, { ok: true }));
    expect(await getJson(kc, '/a', {}, never)).toEqual({ ok: true });
    sessions[0]?.goaway(constants.NGHTTP2_NO_ERROR);
    await new Promise((r) => setTimeout(r, 50));
    expect(await getJson(kc, '/b', {}, never)).toEqual({ ok: true });
    sessions[1]?.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(await getJson(kc, '/c', {}, never)).toEqual({ ok: true });
    expect(sessions).toHaveLength(3);
  });

  it('fails a call whose stream the server reset, and only that call', async () => {
    const { kc } = await h2Server((req, res) => {
      if (req.url === '/reset') req.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      else json(res, { ok: true });
    });
    const reset = await getJson(kc, '/reset', {}, never).catch((e: unknown) => e);
    expect(reset).toBeInstanceOf(Error);
    expect(await getJson(kc, '/ok', {}, never)).toEqual({ ok: true });
  });

  it('rejects with the reason of an abort, and cancels the stream on the server', async () => {
    let cancelled: () => void = () => undefined;
    const gone = new Promise<void>((resolve) => (cancelled = resolve));
    const { kc } = await h2Server((req) => req.stream.once('close', cancelled));
    const abort = new AbortController();
    const call = getJson(kc, '/never', {}, abort.signal).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    abort.abort(new Error('the caller left'));
    expect(await call).toMatchObject({ message: 'the caller left' });
    await gone;
  });

  it('leaves a server whose TLS does not offer h2 to undici after the first call, which it answers', async () => {
    let refusedHandshakes = 0;
    const server = createHttpsServer({ cert: loopbackCert, key: loopbackKey }, (req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(`"${req.httpVersion}"`),
    );
    server.on('tlsClientError', () => refusedHandshakes++);
    cleanups.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const kc = await loopbackTlsKubeConfig(server);
    expect(await getJson(kc, '/a', {}, never)).toBe('1.1');
    expect(await http2For(kc)).toBeUndefined();
    expect(await getJson(kc, '/b', {}, never)).toBe('1.1');
    expect(refusedHandshakes).toBe(1);
  });
});
