import { getEventListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import { KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig } from '../testing/loopback.js';
import { Informer } from './informer.js';

const lease = (rv: string, holder: string, name = 'retrospective'): V1Lease => ({
  metadata: { name, resourceVersion: rv },
  spec: { holderIdentity: holder },
});

/**
 * Plays the apiserver's list/watch protocol from a script, so the watch loop's handling of
 * 410 Gone and dropped streams can be driven exactly: each request takes the next step.
 */
function scriptedApiserver(steps: ((url: URL, res: import('node:http').ServerResponse) => void)[]) {
  const requests: string[] = [];
  const urls: URL[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    urls.push(url);
    requests.push(
      `${url.searchParams.get('watch') ? 'watch' : 'list'}@${url.searchParams.get('resourceVersion') ?? ''}`,
    );
    const step = steps.shift();
    if (step) step(url, res);
    else res.writeHead(200).write(''); // hang: a watch with nothing to say
  });
  return { server, requests, urls };
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
let watch: Informer<V1Lease> | undefined;
afterEach(async () => {
  await watch?.stop();
  server?.closeAllConnections();
  server?.close();
});

async function start(
  steps: Parameters<typeof scriptedApiserver>[0],
  options: { labelSelector?: string; fieldSelector?: string } = {},
) {
  const api = scriptedApiserver(steps);
  server = api.server;
  const kc = await loopbackKubeConfig(api.server);
  const seen: string[] = [];
  const restarts: string[] = [];
  watch = new Informer<V1Lease>({
    kubeConfig: kc,
    path: '/apis/coordination.k8s.io/v1/namespaces/default/leases',
    ...options,
    observe: () => undefined,
    maxBackoffMs: 50,
    onRestart: (reason) => restarts.push(reason),
  });
  watch.on(({ type, object }) => seen.push(`${type}:${object.spec?.holderIdentity}`));
  await watch.start();
  return { seen, restarts, requests: api.requests, urls: api.urls };
}

describe('the informer', () => {
  it('relists after 410 Gone and carries on watching from the new list', async () => {
    const { seen, restarts, requests } = await start([
      list('10', [lease('10', 'ana')]),
      stream({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }),
      list('20', [lease('20', 'bob')]),
      stream({ type: 'MODIFIED', object: lease('21', 'carol') }),
    ]);
    await expect
      .poll(() => seen, { timeout: 5000 })
      .toEqual(['ADDED:ana', 'MODIFIED:bob', 'MODIFIED:carol']);
    expect(restarts).toEqual(['gone']);
    expect(requests.slice(0, 4)).toEqual(['list@', 'watch@10', 'list@', 'watch@20']);
    // The stream ended after carol: the informer watches on from her resourceVersion.
    await expect.poll(() => requests[4]).toBe('watch@21');
  });

  it('treats an ERROR event other than 410 as a fault: backs off and relists, never re-watches at once', async () => {
    const { seen, restarts, requests } = await start([
      list('10', [lease('10', 'ana')]),
      stream({ type: 'ERROR', object: { kind: 'Status', code: 500, reason: 'InternalError' } }),
      list('20', [lease('20', 'bob')]),
    ]);
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['ADDED:ana', 'MODIFIED:bob']);
    expect(restarts).toEqual(['error']);
    expect(requests.slice(0, 3)).toEqual(['list@', 'watch@10', 'list@']);
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
    await expect
      .poll(() => seen, { timeout: 5000 })
      .toEqual(['ADDED:ana', 'MODIFIED:bob', 'MODIFIED:carol']);
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
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['ADDED:ana', 'MODIFIED:dan']);
    expect(restarts.length).toBeGreaterThanOrEqual(2);
    expect(restarts.every((r) => r === 'error')).toBe(true);
    await expect.poll(() => watch?.isWatching()).toBe(true);
  });

  it('reports an object that vanished between two lists as deleted, with its last state', async () => {
    const { seen } = await start([
      list('10', [lease('10', 'ana'), lease('10', 'bob', 'standup')]),
      stream({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }),
      list('20', [lease('10', 'ana')]),
    ]);
    await expect
      .poll(() => seen, { timeout: 5000 })
      .toEqual(['ADDED:ana', 'ADDED:bob', 'DELETED:bob']);
    expect(watch?.list().map((l) => l.metadata?.name)).toEqual(['retrospective']);
  });

  it('keeps objects without their managedFields, from lists and watches alike', async () => {
    const managed = (rv: string, holder: string): V1Lease => ({
      ...lease(rv, holder),
      metadata: {
        ...lease(rv, holder).metadata,
        managedFields: [{ manager: 'kubectl', operation: 'Update', fieldsType: 'FieldsV1' }],
      },
    });
    const { seen } = await start([
      list('10', [managed('10', 'ana')]),
      stream({ type: 'MODIFIED', object: managed('11', 'bob') }),
    ]);
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['ADDED:ana', 'MODIFIED:bob']);
    expect(watch?.get('retrospective')?.spec?.holderIdentity).toBe('bob');
    expect(watch?.get('retrospective')?.metadata).not.toHaveProperty('managedFields');
  });

  it("lists with the watch's selectors, and keeps the objects as the API server sent them (keys a client model does not know included)", async () => {
    const later = {
      ...lease('10', 'ana'),
      spec: { holderIdentity: 'ana', fromLaterKubernetes: 1 },
    };
    const { seen, urls } = await start([list('10', [later])], {
      fieldSelector: 'metadata.name=retrospective',
    });
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['ADDED:ana']);
    expect(watch?.get('retrospective')?.spec).toEqual(later.spec);
    const [listed] = urls;
    expect(listed?.pathname).toBe('/apis/coordination.k8s.io/v1/namespaces/default/leases');
    expect(Object.fromEntries(listed?.searchParams ?? [])).toEqual({
      fieldSelector: 'metadata.name=retrospective',
    });
    // The watch that follows has the same selector.
    await expect
      .poll(() => urls[1]?.searchParams.get('fieldSelector'))
      .toBe('metadata.name=retrospective');
  });

  it('lists with a label selector too, and through the list it is given when there is one', async () => {
    const { seen, urls } = await start([list('10', [lease('10', 'ana')])], {
      labelSelector: 'retrospective.dev/lock=true',
    });
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['ADDED:ana']);
    expect(Object.fromEntries(urls[0]?.searchParams ?? [])).toEqual({
      labelSelector: 'retrospective.dev/lock=true',
    });
    await watch?.stop();
    const given = new Informer<V1Lease>({
      kubeConfig: new KubeConfig(),
      path: '/unused',
      list: () =>
        Promise.resolve({ items: [lease('3', 'bob')], metadata: { resourceVersion: '3' } }),
      observe: () => undefined,
    });
    const listed = new Promise<string>((resolve) =>
      given.on(({ object }) => resolve(object.spec?.holderIdentity ?? '')),
    );
    await given.start();
    expect(await listed).toBe('bob');
    await given.stop();
  });

  it('takes a list answer without items as a failure, never as every object gone', async () => {
    const { seen, restarts } = await start([
      (_, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}'),
      list('10', [lease('10', 'ana')]),
    ]);
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['ADDED:ana']);
    expect(restarts).toContain('error');
  });

  it('adds no abort listener per backoff while the apiserver keeps failing', async () => {
    const fail = (_: URL, res: import('node:http').ServerResponse) => res.writeHead(500).end('{}');
    const { restarts } = await start([
      list('10', [lease('10', 'ana')]),
      ...Array.from({ length: 30 }, () => fail),
    ]);
    await expect.poll(() => restarts.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(25);
    const stopping = (watch as unknown as { stopping: AbortController }).stopping.signal;
    expect(getEventListeners(stopping, 'abort').length).toBeLessThanOrEqual(2);
  });
});
