import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoordinationV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaseWatch } from './lease-watch.js';

const lease = (rv: string, holder: string): V1Lease => ({
  metadata: { name: 'retrospective', resourceVersion: rv },
  spec: { holderIdentity: holder },
});

/**
 * Plays the apiserver's list/watch protocol from a script, so the watch loop's handling of
 * 410 Gone and dropped streams can be driven exactly: each request takes the next step.
 */
function scriptedApiserver(steps: ((url: URL, res: import('node:http').ServerResponse) => void)[]) {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(
      `${url.searchParams.get('watch') ? 'watch' : 'list'}@${url.searchParams.get('resourceVersion') ?? ''}`,
    );
    const step = steps.shift();
    if (step) step(url, res);
    else res.writeHead(200).write(''); // hang: a watch with nothing to say
  });
  return { server, requests };
}

const list = (rv: string, items: V1Lease[]) => (_: URL, res: import('node:http').ServerResponse) =>
  res
    .writeHead(200, { 'Content-Type': 'application/json' })
    .end(JSON.stringify({ kind: 'LeaseList', metadata: { resourceVersion: rv }, items }));
const stream =
  (...events: object[]) =>
  (_: URL, res: import('node:http').ServerResponse) =>
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(events.map((e) => JSON.stringify(e)).join('\n') + '\n');

let server: Server | undefined;
let watch: LeaseWatch | undefined;
afterEach(async () => {
  await watch?.stop();
  server?.closeAllConnections();
  server?.close();
});

async function start(steps: Parameters<typeof scriptedApiserver>[0]) {
  const api = scriptedApiserver(steps);
  server = api.server;
  await new Promise<void>((r) => api.server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    // client-node only speaks plain HTTP when told TLS is not verified.
    {
      name: 'fake',
      skipTLSVerify: true,
      server: `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`,
    },
    { name: 'u' },
  );
  const seen: string[] = [];
  const restarts: string[] = [];
  watch = new LeaseWatch({
    kubeConfig: kc,
    api: kc.makeApiClient(CoordinationV1Api),
    namespace: 'default',
    labelSelector: 'retrospective.dev/lock',
    observe: () => undefined,
    maxBackoffMs: 50,
    onList: (leases) => seen.push(`list:${leases.map((l) => l.spec?.holderIdentity).join()}`),
    onEvent: (type, l) => seen.push(`${type}:${l.spec?.holderIdentity}`),
    onRestart: (reason) => restarts.push(reason),
  });
  await watch.start();
  return { seen, restarts, requests: api.requests };
}

describe('the Lease watch loop', () => {
  it('relists after 410 Gone and carries on watching from the new list', async () => {
    const { seen, restarts, requests } = await start([
      list('10', [lease('10', 'ana')]),
      stream({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }),
      list('20', [lease('20', 'bob')]),
      stream({ type: 'MODIFIED', object: lease('21', 'carol') }),
    ]);
    await expect.poll(() => seen).toEqual(['list:ana', 'list:bob', 'MODIFIED:carol']);
    expect(restarts).toEqual(['gone']);
    expect(requests.slice(0, 4)).toEqual(['list@', 'watch@10', 'list@', 'watch@20']);
    expect(requests[4]).toBe('watch@21');
  });

  it('resumes a watch that ended cleanly from the last resourceVersion, without relisting', async () => {
    const { seen, restarts, requests } = await start([
      list('10', [lease('10', 'ana')]),
      stream(
        { type: 'MODIFIED', object: lease('11', 'bob') },
        { type: 'BOOKMARK', object: { metadata: { resourceVersion: '15' } } },
      ),
      stream({ type: 'MODIFIED', object: lease('16', 'carol') }),
    ]);
    await expect.poll(() => seen).toEqual(['list:ana', 'MODIFIED:bob', 'MODIFIED:carol']);
    expect(restarts).toEqual([]);
    expect(requests.slice(0, 3)).toEqual(['list@', 'watch@10', 'watch@15']);
  });

  it('backs off, relists and reports unhealthy while the apiserver errors, then recovers', async () => {
    const fail = (_: URL, res: import('node:http').ServerResponse) => res.writeHead(500).end('{}');
    const { seen, restarts } = await start([
      list('10', [lease('10', 'ana')]),
      fail,
      fail,
      list('30', [lease('30', 'dan')]),
    ]);
    await expect.poll(() => seen).toEqual(['list:ana', 'list:dan']);
    expect(restarts.length).toBeGreaterThanOrEqual(2);
    expect(restarts.every((r) => r === 'error')).toBe(true);
    await expect.poll(() => watch?.healthy()).toBe(true);
  });
});
