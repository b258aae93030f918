import { connect, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { rawRequest } from '../../api-server/src/testing/harness.ts';
import { metric, startStandalone, type Service } from '../support/processes.ts';

/**
 * Input an attacker tried against `make run`, replayed against the built server over real
 * sockets. Each case was answered wrongly before (a 500 with a stack trace, a lossy or trimmed
 * name taken as another, a reply built for every pipelined request, an upload read to its end).
 */
let server: Service;
beforeAll(async () => {
  server = await startStandalone({
    HTTP_HEADERS_TIMEOUT_SECONDS: '1',
    HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '3',
    LOG_LEVEL: 'info',
  });
});
afterAll(async () => server.stop());

const port = () => server.port;
const lockState = async () =>
  (await (
    await fetch(`${server.url}/retrospective/check`, { headers: { Accept: 'application/json' } })
  ).json()) as {
    holder?: string;
    content: string;
  };
const request = (path: string, init: RequestInit & { user?: string } = {}) =>
  fetch(`${server.url}${path}`, {
    ...init,
    headers: {
      ...(init.user ? { Username: init.user } : {}),
      Accept: 'application/json',
      ...(init.headers as Record<string, string>),
    },
  });
/** Connections the server closed for `reason`, as its metrics count them. */
const dropped = async (reason: string) =>
  (await metric(
    server.metricsUrl,
    `retrospective_http_connections_dropped_total{reason="${reason}"}`,
  )) ?? Number.NaN;
/** A raw request's status line. */
const statusOf = (raw: string) => raw.split('\r\n')[0];

describe('hostile input against the built server', () => {
  it('a GET that takes the lock carries no validator, so If-None-Match cannot turn it into a 304', async () => {
    const res = await request('/retrospective/avail', {
      user: 'ana',
      headers: { 'If-None-Match': '"1"', 'Cache-Control': 'max-age=60' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBeNull();
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect((await lockState()).holder).toBe('ana');
    expect((await request('/retrospective/release', { method: 'POST', user: 'ana' })).status).toBe(
      200,
    );
  });

  it('malformed percent-escapes are 400, compressed bodies 415: never a 500', async () => {
    for (const path of ['/locks/%ZZ/check', '/locks/%ff/avail']) {
      const res = await request(path, { user: 'ana' });
      expect(res.status, path).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'malformed_path' });
    }
    await request('/retrospective/avail', { user: 'ana' });
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const res = await request('/retrospective/change', {
        method: 'POST',
        user: 'ana',
        headers: { 'Content-Type': 'text/plain', 'Content-Encoding': encoding },
        body: encoding === 'gzip' ? gzipSync('valid gzip, still refused') : 'not compressed at all',
      });
      expect(res.status, encoding).toBe(415);
      expect(await res.json()).toMatchObject({ error: 'unsupported_encoding' });
    }
    expect(server.output()).not.toMatch(/"level":50/);
    await request('/retrospective/release', { method: 'POST', user: 'ana' });
  });

  it('names are compared exactly: a trailing no-break space is another (invalid) name, not ana', async () => {
    expect((await request('/retrospective/avail', { user: 'ana' })).status).toBe(200);
    for (const verb of ['avail', 'release']) {
      const raw = await rawRequest(
        port(),
        Buffer.from(
          `${verb === 'avail' ? 'GET' : 'POST'} /retrospective/${verb} HTTP/1.1\r\nHost: x\r\nUsername: ana\xa0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
          'latin1',
        ),
      );
      expect(statusOf(raw), verb).toBe('HTTP/1.1 400 Bad Request');
    }
    expect((await lockState()).holder).toBe('ana');
  });

  it('content must be valid UTF-8 Unicode, in UTF-8: invalid bytes, lone surrogates and other charsets are refused', async () => {
    const change = (body: string | Buffer, type: string) =>
      request('/retrospective/change', {
        method: 'POST',
        user: 'ana',
        headers: { 'Content-Type': type },
        body,
      });
    expect((await change('kept', 'text/plain')).status).toBe(200);
    expect((await change(Buffer.from([0x61, 0xff, 0x62]), 'text/plain')).status).toBe(400);
    expect((await change('{"retrospective":"\\ud800"}', 'application/json')).status).toBe(400);
    expect(
      (await change('{"retrospective":"+ADw-script+AD4-"}', 'application/json; charset=utf-7'))
        .status,
    ).toBe(415);
    expect((await change('latin', 'text/plain; charset=iso-8859-1')).status).toBe(415);
    expect((await lockState()).content).toBe('kept');
    expect((await request('/retrospective/release', { method: 'POST', user: 'ana' })).status).toBe(
      200,
    );
  });

  it('a WebSocket client that sends data is counted and logged once, however many frames it sends', async () => {
    const before =
      (await metric(
        server.metricsUrl,
        'retrospective_websocket_dropped_total{reason="client_message"}',
      )) ?? 0;
    const ws = new WebSocket(`ws://127.0.0.1:${port()}/ws`);
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    for (let i = 0; i < 10_000 && ws.readyState === WebSocket.OPEN; i++) ws.send('x');
    expect(await closed).toBe(1008);
    expect(
      await metric(
        server.metricsUrl,
        'retrospective_websocket_dropped_total{reason="client_message"}',
      ),
    ).toBe(before + 1);
    expect(server.output().match(/websocket client dropped/g)?.length ?? 0).toBe(1);
  });

  it('a connection pipelining requests without reading the replies is closed; others are served', async () => {
    const socket = connect(port(), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined); // the server resets it: that is the point
    socket.pause(); // never read
    socket.write('GET /retrospective/check HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(5000));
    await Promise.race([
      closed,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('still open after 10 s')), 10_000),
      ),
    ]);
    expect((await fetch(`${server.url}/retrospective/check`)).status).toBe(200);
    expect(
      await metric(
        server.metricsUrl,
        'retrospective_http_connections_dropped_total{reason="pipelining"}',
      ),
    ).toBe(1);
  });

  it('an oversized upload is answered 413 at once and its connection closed, declared or chunked', async () => {
    // Declared too large: refused before anything else arrives.
    const declared = await exchange((s) =>
      s.write(
        'POST /retrospective/change HTTP/1.1\r\nHost: x\r\nUsername: ana\r\nContent-Type: text/plain\r\nContent-Length: 104857600\r\n\r\n0123456789',
      ),
    );
    expect(statusOf(declared.answer)).toBe('HTTP/1.1 413 Payload Too Large');
    expect(declared.answer).toMatch(/Connection: close/i);
    // An endless chunked body: refused once past the limit, not read until a timeout.
    let sent = 0;
    const chunked = await exchange((s) => {
      s.write(
        'POST /retrospective/change HTTP/1.1\r\nHost: x\r\nUsername: ana\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n',
      );
      const chunk = `${(16384).toString(16)}\r\n${'x'.repeat(16384)}\r\n`;
      const timer = setInterval(() => {
        if (s.destroyed || sent > 50 * 1024 * 1024) return clearInterval(timer);
        if (s.writableLength > 0) return; // counts what the socket took, not this test's buffer
        s.write(chunk);
        sent += 16384;
      }, 2);
      s.once('close', () => clearInterval(timer));
    });
    expect(statusOf(chunked.answer)).toBe('HTTP/1.1 413 Payload Too Large');
    // Well under the 50 MiB a read to a timeout would take (loopback buffers hold a few MiB).
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });

  it('a request whose headers never finish is answered 408, not "malformed"', async () => {
    const before = await dropped('request_timeout');
    const { answer } = await exchange((s) =>
      s.write('GET /retrospective/check HTTP/1.1\r\nHost: x\r\n'),
    );
    expect(statusOf(answer)).toBe('HTTP/1.1 408 Request Timeout');
    expect(await dropped('request_timeout')).toBe(before + 1);
  });

  it("a connection opened and left unused (a proxy's spare) is not answered 408: a request sent on it later is served", async () => {
    const { answer } = await exchange((s) => {
      // Past the headers timeout (1 s) and the server's next check of it (every second).
      const later = setTimeout(
        () => s.write('GET /retrospective/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        2500,
      );
      s.once('close', () => clearTimeout(later));
    });
    expect(statusOf(answer)).toBe('HTTP/1.1 200 OK');
  });

  it('a connection that never sends a byte is closed without an answer, at the keep-alive timeout', async () => {
    const before = await dropped('never_used');
    const opened = performance.now();
    const { answer } = await exchange(() => undefined);
    expect(answer).toBe('');
    // Not at the headers timeout (1 s, checked every second) but at the keep-alive one (3 s).
    expect(performance.now() - opened).toBeGreaterThan(2900);
    expect(await dropped('never_used')).toBe(before + 1);
  });
});

/** Opens a connection, lets `send` write to it, and returns what came back until it closed (at most 15 s). */
function exchange(send: (socket: Socket) => void): Promise<{ answer: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port(), '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 15 s; got: ${answer.slice(0, 200)}`));
    }, 15_000);
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ answer });
    });
    socket.once('connect', () => send(socket));
  });
}
