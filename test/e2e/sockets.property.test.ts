import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerProtocol } from '../../api-server/src/testing/harness.ts';
import { cluster, createNamespace, proxiedKubeconfig } from '../support/kube.ts';
import { startApiServer, startStandalone, type Service } from '../support/processes.ts';
import { SlowApiserver } from '../support/slow-apiserver.ts';

/**
 * Raw sockets against the built server processes: whatever a client sends on the upgrade path or
 * to the HTTP parser, with CR, LF and NUL in every query value, and however it drops the
 * connection (a reset before, during or after the answer, while its credentials are reviewed),
 * the process never exits and no answer carries a header the server did not mean to send.
 */

/** Headers the server may send on these paths; anything else came from the request. */
const ours = new Set([
  'connection',
  'content-type',
  'content-length',
  'retry-after',
  'www-authenticate',
  'upgrade',
  'sec-websocket-accept',
  'sec-websocket-protocol',
  'x-request-id',
  'x-content-type-options',
  'cache-control',
  'date',
  'keep-alive',
  'allow',
  'content-security-policy',
]);

/** Query values a hostile page would try: control bytes that would split a header line. */
const hostileValue = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        '%0d%0a',
        '%0a',
        '%0d',
        '%00',
        '\r\n',
        '%0d%0aSet-Cookie:%20x=1',
        'Location:%20/x',
      ),
      fc.stringMatching(/^[a-z0-9:,]{0,8}$/),
    ),
    { maxLength: 5 },
  )
  .map((parts) => parts.join(''));

type Stage = 'unknown path' | 'bad origin' | 'bad since' | 'upgrade' | 'parser' | 'oversized';

const stages: Stage[] = [
  'unknown path',
  'bad origin',
  'bad since',
  'upgrade',
  'parser',
  'oversized',
];

function request(stage: Stage, value: string, token?: string): string {
  const protocol = token
    ? `Sec-WebSocket-Protocol: retrospective.v1, ${bearerProtocol(token)}\r\n`
    : '';
  const upgrade = (path: string, extra = '') =>
    `GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${protocol}${extra}\r\n`;
  switch (stage) {
    case 'unknown path':
      return upgrade(`/nope?x=${value}`);
    case 'bad origin':
      return upgrade(`/ws?since=${value}`, 'Origin: https://evil.example\r\n');
    case 'bad since':
      return upgrade(`/ws?since=${value}x:y`);
    case 'upgrade':
      return upgrade(`/ws?since=retrospective:0&x=${value}`);
    case 'parser':
      return `GET /retrospective/check?x=${value} HTTP/1.1\r\nHost: localhost\r\nUsername: a\u0001b\r\n\r\n`;
    case 'oversized':
      return `GET /ws?x=${value} HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(300_000)}\r\n\r\n`;
  }
}

/** When the client drops the connection. */
type Drop = 'reset at once' | 'reset after the first bytes' | 'reset later' | 'read the answer';

/**
 * Sends `text` on a raw connection, drops it as `drop` says, and returns what was read (the
 * answer, or part of it).
 */
async function exchange(port: number, text: string, drop: Drop): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let read = '';
  const answered = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      read += chunk.toString('latin1');
      if (drop === 'reset after the first bytes') socket.resetAndDestroy();
      if (read.includes('\r\n\r\n')) resolve();
    });
    socket.on('close', () => resolve());
  });
  socket.write(text);
  if (drop === 'reset at once') socket.resetAndDestroy();
  else if (drop === 'reset later') setTimeout(() => socket.resetAndDestroy(), 30);
  await Promise.race([answered, new Promise((r) => setTimeout(r, 1500))]);
  if (!socket.destroyed) socket.resetAndDestroy();
  return read;
}

/** The header names of the answer read so far (its head, if complete). */
function headerNames(raw: string): string[] {
  const head = raw.split('\r\n\r\n')[0] ?? '';
  return head
    .split('\r\n')
    .slice(1)
    .filter(Boolean)
    .map((line) => (line.split(':')[0] ?? '').toLowerCase());
}

const drops = fc.constantFrom<Drop>(
  'reset at once',
  'reset after the first bytes',
  'reset later',
  'read the answer',
);

async function stillServing(service: Service): Promise<void> {
  // Neither exited nor ended by a signal (which leaves exitCode null).
  expect([service.child.exitCode, service.child.signalCode], service.output()).toEqual([
    null,
    null,
  ]);
  expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
}

describe('raw sockets against `make run` (header mode)', () => {
  let server: Service;
  beforeAll(async () => {
    server = await startStandalone({ LOG_LEVEL: 'warn' });
  });
  afterAll(async () => server.stop());

  it('never end the process, whatever the stage and however the client drops', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...stages),
        hostileValue,
        drops,
        async (stage, value, drop) => {
          const answer = await exchange(server.port, request(stage, value), drop);
          for (const name of headerNames(answer))
            expect(ours, `${stage}: ${answer}`).toContain(name);
          await stillServing(server);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('answer every refused upgrade with a status of their own and no client text in the head', async () => {
    for (const stage of ['unknown path', 'bad origin', 'bad since'] as const) {
      const answer = await exchange(
        server.port,
        request(stage, '%0d%0aSet-Cookie:%20x=1'),
        'read the answer',
      );
      const [head] = answer.split('\r\n\r\n');
      expect(head, stage).toMatch(/^HTTP\/1.1 (400 Bad Request|403 Forbidden|404 Not Found)\r\n/);
      expect(head, stage).not.toMatch(/set-cookie/i);
    }
  });
});

describe('raw sockets against a kubernetes-mode api-server, while tokens are being reviewed', () => {
  let api: Service;
  let proxy: SlowApiserver;
  beforeAll(async () => {
    const namespace = await createNamespace('sockets');
    proxy = new SlowApiserver(new URL(cluster().server));
    // Every TokenReview takes a while: handshakes stay pending long enough to be reset.
    proxy.slow = (req) => req.url?.includes('/tokenreviews') ?? false;
    proxy.delayMs = 200;
    const kubeconfig = proxiedKubeconfig('sockets', await proxy.listen(), namespace);
    api = await startApiServer(kubeconfig, namespace, {
      AUTH_MODE: 'kubernetes',
      LOG_LEVEL: 'warn',
    });
  });
  afterAll(async () => {
    await api.stop();
    await proxy.close();
  });

  it('never end the process when a client resets during the review', async () => {
    await fc.assert(
      fc.asyncProperty(hostileValue, drops, fc.boolean(), async (value, drop, known) => {
        // A token the API server knows (the review succeeds) or a forged one (it fails).
        const token = known ? cluster().token : `forged-${value.length}`;
        const answer = await exchange(api.port, request('upgrade', value, token), drop);
        for (const name of headerNames(answer)) expect(ours, answer).toContain(name);
        await stillServing(api);
      }),
      { numRuns: 30 },
    );
    expect(proxy.held).toBeGreaterThan(0);
  });
});
