import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { V1Lease } from '@kubernetes/client-node';
import {
  LockInvalidError,
  LockService,
  LockTooLargeError,
  StoreUnavailableError,
} from '@retrospective/lock';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig } from '../testing/loopback.js';
import { decodeLease, protobuf } from './lease-proto.js';
import { LeaseStore } from './lease-store.js';

/**
 * An apiserver for one Lease whose watch never says anything: the store's cache stays at the
 * first listing while the Lease itself changes, which is exactly when a write must be built on the
 * object that was read, not on the cache.
 */
function apiserver(initial: V1Lease) {
  let current = initial;
  const writes: V1Lease[] = [];
  /** Each write's content type. */
  const types: (string | undefined)[] = [];
  /** Open watch streams: events pushed to them reach the store's informer. */
  const watches: ServerResponse[] = [];
  /** While set, an accepted write is answered only once it resolves. */
  let hold: Promise<void> | undefined;
  /** Answers the next write with this status (e.g. 422 Invalid) and Status fields instead. */
  let refuseWith: number | undefined;
  let refusal: Record<string, unknown> = {};
  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('watch')) {
      watches.push(res);
      return void res.writeHead(200, { 'Content-Type': 'application/json' }).write('');
    }
    if (req.method === 'GET' && url.pathname.endsWith('/leases'))
      return json(res, 200, {
        kind: 'LeaseList',
        metadata: { resourceVersion: current.metadata?.resourceVersion },
        items: [current],
      });
    if (req.method === 'GET') return json(res, 200, current);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // Sent in protobuf (ADR 15), answered in JSON, which the store also reads.
      const body = Buffer.concat(chunks);
      const lease =
        req.headers['content-type'] === protobuf
          ? decodeLease(body)
          : (JSON.parse(body.toString()) as V1Lease);
      writes.push(lease);
      types.push(req.headers['content-type']);
      if (refuseWith) {
        const code = refuseWith;
        refuseWith = undefined;
        return json(res, code, {
          kind: 'Status',
          status: 'Failure',
          reason: 'Invalid',
          code,
          ...refusal,
        });
      }
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
      const answer = current;
      void (hold ?? Promise.resolve()).then(() => json(res, 200, answer));
    });
  });
  return {
    server,
    writes,
    types,
    holdWrites(until: Promise<void>) {
      hold = until;
    },
    refuseNextWrite(status: number, fields: Record<string, unknown> = {}) {
      refuseWith = status;
      refusal = fields;
    },
    /** Tells every watch that the Lease is now `lease` (as the apiserver would, in its order). */
    announce(lease: V1Lease) {
      for (const w of watches) w.write(JSON.stringify({ type: 'MODIFIED', object: lease }) + '\n');
    },
    current: () => current,
    /** Someone else updates the Lease (the store's watch does not tell it). */
    changeBehindItsBack(update: (lease: V1Lease) => V1Lease) {
      current = update(current);
    },
  };
}

const initialLease = (): V1Lease => ({
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
      // A field this client's model classes know, and one only a later Kubernetes would send.
      spec: { ...lease.spec, strategy: 'OldestEmulationVersion', fromLaterKubernetes: 1 } as never,
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
    // The read is the object as sent (raw JSON), not client-node's model, which would drop the
    // unknown key; a key the protobuf codec does not know sends that write as JSON.
    expect(written.spec).toMatchObject({
      strategy: 'OldestEmulationVersion',
      fromLaterKubernetes: 1,
    });
    expect(api.types).toEqual([protobuf, 'application/json']);
  });

  it('takes an answer to its read that is not the Lease as the API being unavailable', async () => {
    const api = apiserver(initialLease());
    server = api.server;
    store = new LeaseStore({
      kubeConfig: await loopbackKubeConfig(api.server),
      namespace: 'default',
      locks: ['retrospective'],
    });
    await store.start();
    api.changeBehindItsBack(() => ({ kind: 'Status' }));
    await expect(store.read('retrospective')).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

/** A started LeaseStore of the lock `retrospective` on the scripted API server `on`. */
async function storeOn(on: Server): Promise<LeaseStore> {
  server = on;
  const started = new LeaseStore({
    kubeConfig: await loopbackKubeConfig(on),
    namespace: 'default',
    locks: ['retrospective'],
  });
  await started.start();
  return started;
}

describe('the Lease store under a racing watch', () => {
  it('never lets its own write, answered late, hide a newer state the watch already delivered', async () => {
    const api = apiserver(initialLease());
    store = await storeOn(api.server);
    let answer: () => void = () => undefined;
    api.holdWrites(new Promise<void>((resolve) => (answer = resolve)));
    const service = new LockService({ store, locks: ['retrospective'] });
    const granted = service.execute('retrospective', { kind: 'avail', user: 'ana' });
    await expect.poll(() => api.writes.length).toBe(1);
    // Our write landed as version 2; bob's release and grant (version 3) followed at once, and
    // the watch delivers both before the answer to our write arrives.
    const ours = api.current();
    api.announce(ours);
    const newer: V1Lease = {
      ...ours,
      metadata: { ...ours.metadata, resourceVersion: '3' },
      spec: { ...ours.spec, holderIdentity: 'bob', leaseTransitions: 2 },
    };
    api.announce(newer);
    await expect.poll(() => store?.cached('retrospective')?.version).toBe('3');
    answer();
    expect(await granted).toMatchObject({ ok: true, state: { holder: 'ana', token: 1 } });
    expect(store.cached('retrospective')?.version).toBe('3');
    expect(store.cached('retrospective')?.state.holder).toBe('bob');
  });

  it('refuses a write its Lease could not hold before sending it, and names a 422 as such', async () => {
    const api = apiserver(initialLease());
    store = await storeOn(api.server);
    const service = new LockService({ store, locks: ['retrospective'] });
    await service.execute('retrospective', { kind: 'avail', user: 'ana' });
    const huge = 'x'.repeat(257 * 1024);
    await expect(
      service.execute('retrospective', { kind: 'change', user: 'ana', content: huge }),
    ).rejects.toBeInstanceOf(LockTooLargeError);
    expect(api.writes).toHaveLength(1);
    // A 422 for the annotations alone is their size; any other is something else made invalid.
    const invalid = (field: string) => ({
      message: `Lease.coordination.k8s.io "retrospective" is invalid: ${field}: Invalid value`,
      details: { causes: [{ reason: 'FieldValueInvalid', field }] },
    });
    const change = () =>
      service.execute('retrospective', { kind: 'change', user: 'ana', content: 'fine' });
    api.refuseNextWrite(422, invalid('metadata.annotations'));
    await expect(change()).rejects.toBeInstanceOf(LockTooLargeError);
    api.refuseNextWrite(422, invalid('spec.leaseTransitions'));
    const refused = change();
    await expect(refused).rejects.toBeInstanceOf(LockInvalidError);
    await expect(refused).rejects.toThrow(
      /refused the Lease as invalid: .*spec.leaseTransitions: Invalid value/,
    );
    api.refuseNextWrite(422);
    await expect(change()).rejects.toThrow(/refused the Lease as invalid: no reason given/);
    expect(api.writes).toHaveLength(4);
  });
});
