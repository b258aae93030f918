import { createServer } from 'node:http';
import { createServer as createTcpServer, connect as tcpConnect, type Socket } from 'node:net';
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
import { getJson, putLease, watchJson } from './json-request.js';
import { decodeLease, encodeLease, protobuf } from './lease-proto.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const never = new AbortController().signal;

/** Waits until `check` holds, for at most two seconds. */
async function until(check: () => boolean | Promise<boolean>) {
  for (const end = Date.now() + 2000; !(await check());) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An HTTP/2 server over TLS that records its sessions and what each client offered in ALPN. */
async function h2Server(
  handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  settings: { maxConcurrentStreams?: number } = {},
) {
  const offered: string[][] = [];
  const sessions: Http2Session[] = [];
  const server = createSecureServer(
    {
      cert: loopbackCert,
      key: loopbackKey,
      settings,
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
    const connection = await http2For(kc);
    expect(await getJson(kc, '/a', {}, never)).toEqual({ ok: true });
    sessions[0]?.goaway(constants.NGHTTP2_NO_ERROR);
    await until(() => connection?.sessions === 0);
    expect(await getJson(kc, '/b', {}, never)).toEqual({ ok: true });
    sessions[1]?.destroy();
    await until(() => connection?.sessions === 0);
    expect(await getJson(kc, '/c', {}, never)).toEqual({ ok: true });
    expect(sessions).toHaveLength(3);
  });

  it('leaves the streams of a session the server is closing alone when a call on it is given up', async () => {
    let watchRes: Http2ServerResponse | undefined;
    const { kc, sessions } = await h2Server((req, res) => {
      if (req.url.includes('watch=true')) {
        watchRes = res;
        return void res.writeHead(200).write('\n');
      }
      // The slow call: never answered, and the server starts closing the connection.
      req.stream.session?.goaway(constants.NGHTTP2_NO_ERROR);
    });
    const connection = await http2For(kc, { pingTimeoutMs: 100 });
    const events: unknown[] = [];
    const watch = watchJson(kc, '/w', {}, (_t, object) => events.push(object), never);
    await until(() => watchRes !== undefined);
    const slow = new AbortController();
    const call = getJson(kc, '/slow', {}, slow.signal).catch((e: unknown) => e);
    await until(() => connection?.sessions === 0);
    slow.abort(new Error('gave up'));
    expect(await call).toMatchObject({ message: 'gave up' });
    // Longer than the PING's time: the watch is still there, and still hears the server.
    await new Promise((r) => setTimeout(r, 300));
    watchRes?.end(JSON.stringify({ type: 'MODIFIED', object: { n: 1 } }) + '\n');
    await watch;
    expect([events, sessions.length]).toEqual([[{ n: 1 }], 1]);
  });

  it('cancels a stream whose reader stopped reading it', async () => {
    let cancelled: () => void = () => undefined;
    const gone = new Promise<void>((resolve) => (cancelled = resolve));
    const { kc } = await h2Server((req, res) => {
      req.stream.once('close', cancelled);
      res.writeHead(200);
      const beat = setInterval(() => {
        if (res.writableEnded || res.destroyed) return clearInterval(beat);
        res.write(JSON.stringify({ type: 'MODIFIED', object: {} }) + '\n');
      }, 10);
      req.stream.once('close', () => clearInterval(beat));
    });
    const failed = await watchJson(
      kc,
      '/w',
      {},
      () => {
        throw new Error('the reader failed');
      },
      never,
    ).catch((e: unknown) => e);
    expect(failed).toMatchObject({ message: 'the reader failed' });
    await Promise.race([gone, new Promise((_, fail) => setTimeout(fail, 2000, 'not cancelled'))]);
  });

  it('sends a stream the server refused unprocessed once more, on a new connection', async () => {
    let seen = 0;
    const { kc, sessions } = await h2Server((req, res) => {
      // The first request is refused unprocessed (as streams past a GOAWAY's last id are).
      if (seen++ === 0) req.stream.close(constants.NGHTTP2_REFUSED_STREAM);
      else json(res, { ok: true });
    });
    expect(await getJson(kc, '/a', {}, never)).toEqual({ ok: true });
    expect([seen, sessions.length]).toEqual([2, 2]);
  });

  it('opens another connection when one carries as many streams as the server allows', async () => {
    const { kc, sessions } = await h2Server(
      (req, res) => {
        // A watch that stays open, as an informer's does.
        if (req.url.includes('watch=true')) return void res.writeHead(200).write('\n');
        json(res, { ok: true });
      },
      { maxConcurrentStreams: 1 },
    );
    // One call first: the server's limit is known once its settings came.
    expect(await getJson(kc, '/a', {}, never)).toEqual({ ok: true });
    const stop = new AbortController();
    const watch = watchJson(kc, '/w', {}, () => undefined, stop.signal).catch(() => undefined);
    await until(() => sessions.some((s) => Object.keys(s.state).length > 0));
    await new Promise((r) => setTimeout(r, 50));
    const read = getJson(kc, '/b', {}, AbortSignal.timeout(2000)).catch((e: unknown) => e);
    expect(await read).toEqual({ ok: true });
    expect(sessions).toHaveLength(2);
    stop.abort();
    await watch;
  });

  it('drops a connection that stopped answering once a call gave up on it, and opens a new one', async () => {
    const { kc: direct } = await h2Server((_req, res) => json(res, { ok: true }));
    // A TCP relay in front of the server whose first connection can be frozen (a dead peer).
    const target = new URL(direct.getCurrentCluster()?.server ?? '');
    const relayed: Socket[] = [];
    let frozen = false;
    const relay = createTcpServer((client) => {
      const upstream = tcpConnect(Number(target.port), '127.0.0.1');
      relayed.push(client, upstream);
      const first = relayed.length === 2;
      client.on('data', (d) => (frozen && first ? undefined : upstream.write(d)));
      upstream.on('data', (d) => (frozen && first ? undefined : client.write(d)));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    cleanups.push(() => {
      relayed.forEach((socket) => socket.destroy());
      relay.close();
    });
    const kc = await loopbackTlsKubeConfig(relay);
    const connection = await http2For(kc, { pingTimeoutMs: 200 });
    expect(await getJson(kc, '/a', {}, never)).toEqual({ ok: true });
    frozen = true;
    const stuck = await getJson(kc, '/b', {}, AbortSignal.timeout(300)).catch((e: unknown) => e);
    expect(stuck).toMatchObject({ name: 'TimeoutError' });
    // The PING after the timeout went unanswered: the frozen connection is gone.
    await until(() => connection?.sessions === 0);
    expect(await getJson(kc, '/c', {}, never)).toEqual({ ok: true });
  });

  it('fails an update whose stream the server reset, once and only that call, as no answer', async () => {
    let updates = 0;
    const lease = { metadata: { name: 'l', resourceVersion: '1' }, spec: { leaseTransitions: 1 } };
    const { kc } = await h2Server((req, res) => {
      if (req.method === 'PUT') {
        updates++;
        return req.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      }
      json(res, { ok: true });
    });
    const reset = await putLease(kc, '/l', lease, never).catch((e: unknown) => e);
    // Not an answer (ApiException), not a refusal of HTTP/2 (which would send it again).
    expect(reset).toMatchObject({ code: 'ERR_HTTP2_STREAM_ERROR' });
    expect(updates).toBe(1);
    expect(await getJson(kc, '/ok', {}, never)).toEqual({ ok: true });
  });

  it('sends an update and reads its answer in protobuf over HTTP/2', async () => {
    const lease = { metadata: { name: 'l', resourceVersion: '1' }, spec: { leaseTransitions: 4 } };
    const { kc } = await h2Server((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const sent = decodeLease(Buffer.concat(chunks));
        const written = { ...sent, metadata: { ...sent.metadata, resourceVersion: '2' } };
        res.writeHead(200, { 'content-type': protobuf }).end(encodeLease(written) ?? '');
      });
    });
    const written = await putLease(kc, '/l', lease, never);
    expect(written).toMatchObject({
      metadata: { resourceVersion: '2' },
      spec: { leaseTransitions: 4 },
    });
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
    await Promise.race([gone, new Promise((_, fail) => setTimeout(fail, 2000, 'not cancelled'))]);
  });

  it('presents the client certificate of the kubeconfig, and refuses a server it does not trust without going around it', async () => {
    const server = createSecureServer(
      // Asks every client for a certificate; says whether it had a good one.
      {
        cert: loopbackCert,
        key: loopbackKey,
        requestCert: true,
        rejectUnauthorized: false,
        ca: loopbackCert,
      },
      (req, res) => json(res, { client: (req.socket as { authorized?: boolean }).authorized }),
    );
    const sessions: Http2Session[] = [];
    server.on('session', (session) => sessions.push(session));
    cleanups.push(() => {
      sessions.forEach((session) => session.destroy());
      server.close();
    });
    const kc = await loopbackTlsKubeConfig(server);
    const pem = (text: string) => Buffer.from(text).toString('base64');
    kc.users[0] = { name: 'test', certData: pem(loopbackCert), keyData: pem(loopbackKey) };
    expect(await getJson(kc, '/a', {}, never)).toEqual({ client: true });
    // The same server, trusted by nothing: a TLS failure, not a reason to try undici.
    const untrusted = new KubeConfig();
    untrusted.loadFromClusterAndUser(
      { name: 'c', server: kc.getCurrentCluster()?.server ?? '', skipTLSVerify: false },
      { name: 'u' },
    );
    const refused = await getJson(untrusted, '/b', {}, never).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      cause: { code: expect.stringMatching(/CERT|SELF_SIGNED/) as unknown },
    });
    expect(await http2For(untrusted)).toBeDefined();
    // Told to skip verification, it connects (and presents no certificate).
    const skipping = new KubeConfig();
    skipping.loadFromClusterAndUser(
      { name: 'c', server: kc.getCurrentCluster()?.server ?? '', skipTLSVerify: true },
      { name: 'u' },
    );
    expect(await getJson(skipping, '/c', {}, never)).toEqual({ client: false });
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
