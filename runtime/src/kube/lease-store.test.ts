import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { V1Lease } from '@kubernetes/client-node';
import { LockService } from '@retrospective/lock';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig } from '../testing/loopback.js';
import { LeaseStore } from './lease-store.js';

/**
 * An apiserver for one Lease whose watch never says anything: the store's cache stays at the
 * first listing while the Lease itself changes, which is exactly when a write must be built on the
 * object that was read, not on the cache.
 */
function apiserver(initial: V1Lease) {
  let current = initial;
  const writes: V1Lease[] = [];
  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch')) return void res.writeHead(200).write(''); // silent
    if (req.method === 'GET' && url.pathname.endsWith('/leases'))
      return json(res, 200, {
        kind: 'LeaseList',
        metadata: { resourceVersion: current.metadata?.resourceVersion },
        items: [current],
      });
    if (req.method === 'GET') return json(res, 200, current);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const lease = JSON.parse(body) as V1Lease;
      writes.push(lease);
      if (lease.metadata?.resourceVersion !== current.metadata?.resourceVersion)
        return json(res, 409, {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          reason: 'Conflict',
          code: 409,
        });
      current = {
        ...lease,
        metadata: {
          ...lease.metadata,
          resourceVersion: String(Number(current.metadata?.resourceVersion) + 1),
        },
      };
      json(res, 200, current);
    });
  });
  return {
    server,
    writes,
    /** Someone else updates the Lease (the store's watch does not tell it). */
    changeBehindItsBack(update: (lease: V1Lease) => V1Lease) {
      current = update(current);
    },
  };
}

let server: Server | undefined;
let store: LeaseStore | undefined;
afterEach(async () => {
  await store?.close();
  server?.closeAllConnections();
  server?.close();
});

describe('the Lease store', () => {
  it('writes on exactly the Lease it read, keeping what others wrote since its cache was filled', async () => {
    const api = apiserver({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: 'retrospective',
        namespace: 'default',
        resourceVersion: '1',
        labels: { 'retrospective.dev/lock': 'true' },
      },
      spec: { leaseTransitions: 0 },
    });
    server = api.server;
    const kc = await loopbackKubeConfig(api.server);
    store = new LeaseStore({ kubeConfig: kc, namespace: 'default', locks: ['retrospective'] });
    await store.start();

    api.changeBehindItsBack((lease) => ({
      ...lease,
      metadata: {
        ...lease.metadata,
        resourceVersion: '2',
        labels: { ...lease.metadata?.labels, team: 'ops' },
        annotations: { 'example.com/owner': 'platform' },
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'u-1' }],
      },
    }));
    const result = await new LockService({ store, locks: ['retrospective'] }).execute(
      'retrospective',
      { kind: 'avail', user: 'ana' },
    );

    expect(result).toMatchObject({ ok: true, outcome: 'granted' });
    // The first write, decided on the stale cache, lost the compare-and-swap; the second was
    // built on the Lease read afresh: others' labels, annotations and owners survive.
    expect(api.writes.map((w) => w.metadata?.resourceVersion)).toEqual(['1', '2']);
    const written = api.writes[1]!;
    expect(written.metadata?.labels).toMatchObject({
      team: 'ops',
      'retrospective.dev/lock': 'true',
    });
    expect(written.metadata?.annotations).toMatchObject({ 'example.com/owner': 'platform' });
    expect(written.metadata?.ownerReferences).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'u-1' },
    ]);
    expect(written.spec?.holderIdentity).toBe('ana');
  });
});
