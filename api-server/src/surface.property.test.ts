import fc from 'fast-check';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity, Reviewer } from './auth/authorizer.js';
import { rawRequest, startTestApp } from './testing/harness.js';

/**
 * Properties over the whole HTTP and WebSocket surface, in both auth modes: whatever arrives
 * (methods, paths, headers, bodies, encodings, credentials), the answer is never a 5xx, and a
 * refused request never changes any lock.
 */

const reviewer: Reviewer = {
  reviewToken: async (token: string): Promise<Identity | undefined> =>
    ({ v: 'viewer', e: 'editor', a: 'admin' })[token]
      ? { user: { v: 'viewer', e: 'editor', a: 'admin' }[token]!, groups: [] }
      : undefined,
  mayAccess: async (who, verb) =>
    ({ viewer: ['get'], editor: ['get', 'hold'], admin: ['get', 'hold', 'force-release'] })[
      who.user
    ]?.includes(verb) ?? false,
};

const locks = ['retrospective', 'standup', 'missing', '%ZZ', '..%2F..', 'a'.repeat(300), 'é'];
const verbs = ['check', 'avail', 'change', 'release', 'history', 'nope', ''];
const path = fc.oneof(
  fc.constantFrom('/', '/api/me', '/openapi.json', '/view.js', '/ws', '/healthz', '/readyz'),
  fc
    .tuple(
      fc.constantFrom(...verbs),
      fc.oneof({ arbitrary: fc.constant('retrospective'), weight: 3 }, fc.constantFrom(...locks)),
      fc.boolean(),
    )
    .map(([verb, lock, seed]) => (seed ? `/retrospective/${verb}` : `/locks/${lock}/${verb}`)),
  fc.string({ maxLength: 40 }).map((s) => `/${encodeURI(s)}`),
);
const query = fc.constantFrom(
  '',
  '?force=true',
  '?force=false',
  '?force=yes',
  '?force=true&force=true',
  '?since=retrospective:1',
  '?x=%ZZ',
);
const text = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.constantFrom('ana', 'bob', 'admin', '', ' ', 'ana\u00a0', 'a'.repeat(65), '1', '"1"', '-1'),
);
/** Header values as raw bytes: UTF-8 or latin1 text, and now and then a bare CR, LF or NUL. */
const headerValue = fc
  .tuple(text, fc.constantFrom('utf8', 'latin1'), fc.boolean())
  .map(([value, encoding, raw]) =>
    Buffer.from(raw ? value : value.replace(/[\r\n\0]/g, ''), encoding as BufferEncoding),
  );
const headerName = fc.constantFrom(
  'Username',
  'Retrospective',
  'If-Match',
  'Authorization',
  'Content-Type',
  'Accept',
  'Origin',
  'Sec-WebSocket-Protocol',
  'Transfer-Encoding',
  'X-Request-Id',
);
const authorization = fc.constantFrom('Bearer v', 'Bearer e', 'Bearer a', 'Bearer x', 'Basic YTpi');
/** Mostly well-formed values, so requests get past parsing to the lock; sometimes anything. */
const mostly = <T>(good: fc.Arbitrary<T>, any: fc.Arbitrary<T>) =>
  fc.option(fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: any, weight: 1 }));
const request = fc.record({
  method: fc.oneof(
    { arbitrary: fc.constantFrom('GET', 'POST'), weight: 4 },
    { arbitrary: fc.constantFrom('HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), weight: 1 },
    { arbitrary: fc.stringMatching(/^[A-Za-z]{1,8}$/), weight: 1 },
  ),
  path,
  query,
  username: mostly(fc.constantFrom('ana', 'bob', 'admin'), text),
  content: fc.option(text),
  ifMatch: mostly(fc.nat(6).map(String), text),
  contentType: mostly(
    fc.constantFrom('application/json', 'text/plain', 'text/plain; charset=utf-8'),
    fc.constantFrom('text/plain; charset=latin1', 'application/json; charset=utf-16', 'x/y; a'),
  ),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 2 }),
  authorization: fc.option(authorization),
  body: fc.oneof(
    fc.constant(Buffer.alloc(0)),
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    fc.json({ maxDepth: 2 }).map((j) => Buffer.from(j)),
    fc.string({ maxLength: 80 }).map((s) => Buffer.from(JSON.stringify({ retrospective: s }))),
  ),
});

type Request = typeof request extends fc.Arbitrary<infer R> ? R : never;

function encode(r: Request): Buffer {
  const lines: Buffer[] = [
    Buffer.from(`${r.method} ${r.path}${r.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n`),
  ];
  const headers: [string, Buffer][] = [...r.headers];
  if (r.username !== null) headers.push(['Username', Buffer.from(r.username)]);
  if (r.content !== null) headers.push(['Retrospective', Buffer.from(r.content)]);
  if (r.ifMatch !== null) headers.push(['If-Match', Buffer.from(r.ifMatch)]);
  if (r.contentType !== null) headers.push(['Content-Type', Buffer.from(r.contentType)]);
  for (const [name, value] of headers)
    lines.push(Buffer.concat([Buffer.from(`${name}: `), value, Buffer.from('\r\n')]));
  if (r.authorization) lines.push(Buffer.from(`Authorization: ${r.authorization}\r\n`));
  lines.push(Buffer.from(`Content-Length: ${r.body.length}\r\nConnection: close\r\n\r\n`), r.body);
  return Buffer.concat(lines);
}

for (const mode of ['header', 'kubernetes'] as const) {
  describe(`the HTTP and WebSocket surface (AUTH_MODE=${mode})`, () => {
    let t: Awaited<ReturnType<typeof startTestApp>>;
    beforeAll(async () => {
      t = await startTestApp(
        {
          AUTH_MODE: mode,
          LOCKS: 'retrospective,standup',
          ADMIN_USERS: 'admin',
          MAX_CONTENT_BYTES: '64',
          RATE_LIMIT_USER_PER_MINUTE: '0',
        },
        reviewer,
      );
    });
    afterAll(async () => t.close());
    const states = () => t.service.locks.map((lock) => t.service.state(lock));

    it('never answers 5xx, and a refused request changes no lock', async () => {
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const before = states();
          const answer = await rawRequest(t.port, encode(r));
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          expect(status, answer.slice(0, 300)).toBeGreaterThanOrEqual(100);
          expect(status, answer.slice(0, 300)).toBeLessThan(500);
          if (status >= 300) expect(states()).toEqual(before);
        }),
        { numRuns: 400 },
      );
      console.info(`statuses (${mode}): ${JSON.stringify([...statuses].sort())}`);
      // The generator reaches past the front door: grants happen, the front door's refusals (400,
      // 404, 405) in every run, and refusals decided on a lock (403, 409, 412, 413, 423) 5 to 15
      // times in 400 requests, though each of those kinds now and then not at all (demanding five
      // kinds failed 1 of the 16 runs on record).
      expect(statuses.get(200)).toBeGreaterThan(0);
      for (const status of [400, 404, 405])
        expect(statuses.get(status), String(status)).toBeGreaterThan(0);
      const onALock = [403, 409, 412, 413, 423].map((s) => statuses.get(s) ?? 0);
      expect(onALock.reduce((a, b) => a + b)).toBeGreaterThan(0);
    });

    it('drops a client that sends anything on the socket, and changes no lock', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.oneof(
              fc.string({ maxLength: 200 }),
              fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
            ),
            { minLength: 1, maxLength: 4 },
          ),
          async (frames) => {
            const before = states();
            const ws = new WebSocket(`ws://127.0.0.1:${t.port}/ws`, ['retrospective.v1'], {
              headers: { Authorization: 'Bearer a', Username: 'admin' },
            });
            const closed = new Promise<number>((resolve) => ws.once('close', resolve));
            ws.on('error', () => undefined);
            await new Promise((resolve) => ws.once('open', resolve));
            for (const frame of frames) ws.send(frame);
            expect([1008, 1009]).toContain(await closed);
            expect(states()).toEqual(before);
          },
        ),
        { numRuns: 40 },
      );
      expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    });
  });
}
