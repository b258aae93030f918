// Workload 7 of `make bench`: many declared locks. 1,000 `Lock` objects (kubectl apply), a
// controller and 3 api-server replicas on LOCK_SOURCE=resources, 10,000 WebSocket clients in 4
// measuring processes (bench/crowd.ts), each subscribed to 3 locks; holds and releases spread
// over the locks while `check` is measured. Each figure is set against a floor measured in this
// run: raw Lease creates, a bare node:http server, the processes before the load, the control
// plane alone, and the answer to the release itself.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { loadKubeConfig } from '@retrospective/runtime';
import { bareLike, nth, ok, root, rssKiB, sleep, spawnNode, stats, type Proc } from './lib.ts';
import { as, json, namespace, row, type Context, type Row } from './workloads.ts';

const run = promisify(execFile);
const kubectl = (kubeconfig: string, ...args: string[]) =>
  run(resolve(root, 'bin/kubectl'), args, {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });

const group = { group: 'retrospective.dev', version: 'v1alpha1', plural: 'locks' };
const lockYaml = (name: string) =>
  `apiVersion: retrospective.dev/v1alpha1\nkind: Lock\nmetadata:\n  name: ${name}\nspec: {}\n`;

/** The chart's Lock CRD, applied and established (it is cluster-wide; applying it again is a no-op). */
async function installCrd(kubeconfig: string) {
  const crd = resolve(root, 'charts/retrospective/crds/locks.retrospective.dev.yaml');
  await kubectl(kubeconfig, 'apply', '--server-side', '--force-conflicts', '-f', crd);
  const deadline = performance.now() + 30_000;
  for (;;) {
    const { stdout } = await kubectl(
      kubeconfig,
      'get',
      'crd',
      'locks.retrospective.dev',
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Established")].status}',
    );
    if (stdout === 'True') return;
    if (performance.now() > deadline) throw new Error('the Lock CRD was never established');
    await sleep(200);
  }
}

/** Requests the kube-apiserver has served so far, by label set (apiserver_request_total). */
async function apiserverRequests(kubeconfig: string): Promise<Map<string, number>> {
  const { stdout } = await kubectl(kubeconfig, 'get', '--raw', '/metrics');
  const counts = new Map<string, number>();
  for (const line of stdout.split('\n'))
    if (line.startsWith('apiserver_request_total{')) {
      const at = line.lastIndexOf(' ');
      counts.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
  return counts;
}

/** A request's labels, from a line of apiserver_request_total. */
const labelsOf = (key: string): Record<string, string | undefined> =>
  Object.fromEntries([...key.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));

/**
 * kube-apiserver requests over `ms`, less the bench's own metric reads and kubectl's discovery:
 * all of them, and those other than watches re-opened (each informer's watch ends after its
 * timeout, 25 s) and Lease GET/PUT by name (leader election). Those others are what polling or
 * status writes would add. The busiest kinds are printed.
 */
async function apiserverRate(
  kubeconfig: string,
  ms: number,
  label: string,
  renewalsOfControlPlane = Infinity,
) {
  const before = await apiserverRequests(kubeconfig);
  await sleep(ms);
  const after = await apiserverRequests(kubeconfig);
  const deltas = [...after]
    .map(([key, n]) => [key, n - (before.get(key) ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  let total = 0;
  let other = 0;
  let leaseReads = 0;
  for (const [key, n] of deltas) {
    const l = labelsOf(key);
    // kubectl's discovery and the bench's own metric reads.
    if (l.subresource?.includes('openapi') || l.subresource === '/metrics') continue;
    total += n;
    const byName =
      l.resource === 'leases' && l.scope === 'resource' && ['GET', 'PUT'].includes(l.verb ?? '');
    if (byName) leaseReads += n;
    else if (l.verb !== 'WATCH') other += n;
  }
  // Lease GETs and PUTs by name are leader-election renewals up to what they can be: a GET and
  // a PUT per retry period (2 s) for the controller, and the control plane's own (its floor);
  // any beyond that (a lock Lease read or rewritten) counts as other.
  other += Math.max(0, leaseReads - (2 * ms) / 2000 - renewalsOfControlPlane);
  console.error(
    `[bench] apiserver requests, ${label}, ${ms / 1000} s: ${total}, other than watches and Lease renewals ${other}\n` +
      deltas
        .slice(0, 8)
        .map(([key, n]) => `  ${n} ${key.replace(/^apiserver_request_total/, '')}`)
        .join('\n'),
  );
  return { total: total / (ms / 1000), other: other / (ms / 1000), leaseReads };
}

/** A process's V8 heap (in use / total) and external memory in MiB, from its /metrics. */
async function memoryOf(metricsUrl: string): Promise<string> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const mib = (name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return (Number(line?.split(' ')[1]) / 1024 / 1024).toFixed(0);
  };
  return `heap ${mib('nodejs_heap_size_used_bytes')}/${mib('nodejs_heap_size_total_bytes')}, external ${mib('nodejs_external_memory_bytes')}`;
}

/** How many of the namespace's Locks report Ready=True. */
async function readyLocks(objects: CustomObjectsApi, ns: string): Promise<number> {
  const list = (await objects.listNamespacedCustomObject({ ...group, namespace: ns })) as {
    items: { status?: { conditions?: { type: string; status: string }[] } }[];
  };
  return list.items.filter((l) =>
    l.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  ).length;
}

interface Crowd {
  readonly child: ChildProcess;
  readonly subscribers: Map<string, number>;
  /** Its clock minus the bench's, in ms (its receipts are timed on its clock). */
  readonly offset: number;
}

/** Waits for the next message of `child` that has `key`, at most `ms`, or its exit. */
function reply<T>(child: ChildProcess, key: string, ms: number): Promise<T> {
  return new Promise((done, fail) => {
    const onMessage = (msg: Record<string, unknown>) => {
      if (!(key in msg)) return;
      finish();
      done(msg as T);
    };
    const onExit = (code: number | null) => {
      finish();
      fail(new Error(`a crowd exited (${code}) before its ${key}`));
    };
    const timer = setTimeout(() => {
      finish();
      fail(new Error(`a crowd sent no ${key} in ${ms / 1000} s`));
    }, ms);
    const finish = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** The crowd's clock minus ours: the middle of a ping's round trip, best of five. */
async function clockOffset(child: ChildProcess): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 5; i++) {
    const sent = performance.timeOrigin + performance.now();
    const answer = reply<{ pong: number }>(child, 'pong', 10_000);
    child.send({ ping: true });
    const { pong } = await answer;
    const back = performance.timeOrigin + performance.now();
    if (back - sent < best.rtt) best = { rtt: back - sent, offset: pong - (sent + back) / 2 };
  }
  return best.offset;
}

/** One measuring process of `count` clients, once all are connected (killed if it fails to). */
async function crowd(urls: string[], locks: string[], count: number, seed: number): Promise<Crowd> {
  const child = fork(resolve(root, 'bench/crowd.ts'), [], {
    env: {
      ...process.env,
      URLS: urls.join(','),
      LOCKS: locks.join(','),
      COUNT: String(count),
      PER: '3',
      SEED: String(seed),
    },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  try {
    const ready = await reply<{ connected: number; subscribers: [string, number][] }>(
      child,
      'ready',
      180_000,
    );
    if (ready.connected !== count) throw new Error(`${ready.connected} of ${count} connected`);
    return { child, subscribers: new Map(ready.subscribers), offset: await clockOffset(child) };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** The receipts a crowd recorded since it was last asked, on the bench's clock. */
async function receiptsOf(c: Crowd): Promise<Map<string, number[]>> {
  const answer = reply<{ receipts: [string, number[]][] }>(c.child, 'receipts', 30_000);
  c.child.send({ report: true });
  const { receipts } = await answer;
  return new Map(receipts.map(([key, times]) => [key, times.map((t) => t - c.offset)]));
}

/** 7. Many locks: 1,000 Lock objects, 3 replicas, 10,000 subscribed WebSocket clients. */
export async function manyLocks(ctx: Context): Promise<Row[]> {
  const size = ctx.smoke
    ? { locks: 20, replicas: 3, crowds: 2, clients: 50, fresh: 2, churn: 1_500, idle: 1_000 }
    : {
        locks: 1000,
        replicas: 3,
        crowds: 4,
        clients: 2500,
        fresh: 20,
        churn: 30_000,
        idle: 20_000,
      };
  const kc = loadKubeConfig(ctx.kubeconfig);
  const objects = kc.makeApiClient(CustomObjectsApi);
  const leases = kc.makeApiClient(CoordinationV1Api);
  await installCrd(ctx.kubeconfig);
  const ns = await namespace(ctx, 'many');
  const w = `7. ${size.locks} Locks, ${size.replicas} replicas, ${size.crowds * size.clients} ws clients`;
  const procs: Proc[] = [];
  const crowds: Crowd[] = [];
  try {
    // The floor of the control plane alone: what it serves when nothing of ours runs.
    const idleFloor = await apiserverRate(ctx.kubeconfig, size.idle, 'control plane alone');

    // Floor of provisioning: the same number of raw Lease creates, 8 at a time.
    const rawNs = await namespace(ctx, 'many-raw');
    const rawStart = performance.now();
    for (let i = 0; i < size.locks; i += 8)
      await Promise.all(
        Array.from({ length: Math.min(8, size.locks - i) }, (_, j) =>
          leases.createNamespacedLease({
            namespace: rawNs,
            body: { metadata: { name: `raw-${i + j}` }, spec: {} },
          }),
        ),
      );
    const rawCreates = performance.now() - rawStart;

    const env = {
      STORE: 'kubernetes',
      LOCK_SOURCE: 'resources',
      KUBECONFIG: ctx.kubeconfig,
      NAMESPACE: ns,
      WS_MAX_CONNECTIONS: '20000',
    };
    const controller = await spawnNode(
      'controller/dist/main.js',
      { ...env, NODE_OPTIONS: process.env.BENCH_CONTROLLER_NODE_OPTIONS ?? '' },
      '/readyz',
      'metrics',
    );
    procs.push(controller);
    for (let i = 0; i < size.replicas; i++)
      procs.push(await spawnNode('api-server/dist/main.js', env));
    const apis = procs.slice(1);
    await sleep(1000);
    const rssAtStart = await rssKiB(nth(apis, 0).pid);
    const controllerAtStart = await rssKiB(controller.pid);

    // kubectl apply of every Lock in one file, until the controller reports each Ready.
    const names = Array.from(
      { length: size.locks },
      (_, i) => `lock-${String(i).padStart(4, '0')}`,
    );
    const file = join(mkdtempSync(join(tmpdir(), 'bench-locks-')), 'locks.yaml');
    writeFileSync(file, names.map(lockYaml).join('---\n'));
    const applyStart = performance.now();
    await kubectl(ctx.kubeconfig, 'apply', '-n', ns, '-f', file);
    const deadline = applyStart + 180_000;
    while ((await readyLocks(objects, ns)) < size.locks) {
      if (performance.now() > deadline) throw new Error('the Locks were not all Ready in 180 s');
      await sleep(500);
    }
    const allReady = performance.now() - applyStart;

    // A new Lock, created, until a replica grants it; against a raw Lease create.
    const firstGrant: number[] = [];
    const rawCreate: number[] = [];
    for (let i = 0; i < size.fresh; i++) {
      const name = `fresh-${i}`;
      const api = nth(apis, i);
      const t = performance.now();
      await objects.createNamespacedCustomObject({
        ...group,
        namespace: ns,
        body: {
          apiVersion: 'retrospective.dev/v1alpha1',
          kind: 'Lock',
          metadata: { name },
          spec: {},
        },
      });
      // 404 until the replica's watch has the Lock, 503 until the controller made its Lease.
      for (;;) {
        const res = await fetch(`${api.url}/locks/${name}/avail`, {
          method: 'POST',
          headers: as('first'),
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer();
        if (res.status === 200) break;
        if (![404, 503].includes(res.status)) throw new Error(`${name}: HTTP ${res.status}`);
        if (performance.now() - t > 30_000) throw new Error(`${name} was never granted`);
        await sleep(10);
      }
      firstGrant.push(performance.now() - t);
      const r = performance.now();
      await leases.createNamespacedLease({
        namespace: rawNs,
        body: { metadata: { name: `fresh-raw-${i}` }, spec: {} },
      });
      rawCreate.push(performance.now() - r);
    }

    // The crowd: clients spread over the replicas, each subscribed to 3 of the locks.
    const urls = apis.map((a) => a.url);
    for (let i = 0; i < size.crowds; i++) crowds.push(await crowd(urls, names, size.clients, i));
    await sleep(2000);
    const rss = Math.max(...(await Promise.all(apis.map((a) => rssKiB(a.pid)))));
    const controllerRss = await rssKiB(controller.pid);
    console.error(
      `[bench] MiB: controller ${await memoryOf(controller.metricsUrl)}; api-servers ${(
        await Promise.all(apis.map((a) => memoryOf(a.metricsUrl)))
      ).join('; ')}`,
    );

    // Nothing happens: only leader-election renewals may reach the apiserver.
    const idle = await apiserverRate(ctx.kubeconfig, size.idle, 'ours idle', idleFloor.leaseReads);

    // Holds and releases spread over the locks (two users at a time), `check` measured meanwhile
    // on the replicas and on a bare server sending the same body, alternately.
    const bare = await bareLike(`${nth(apis, 0).url}/locks/${names[0]}/check`, json);
    procs.push(bare);
    const released: { key: string; at: number; answer: number }[] = [];
    const end = performance.now() + size.churn;
    let next = 0;
    const churner = async (user: string) => {
      while (performance.now() < end) {
        const lock = nth(names, next++ * 7);
        const api = nth(apis, next);
        const took = await fetch(`${api.url}/locks/${lock}/avail`, {
          method: 'POST',
          headers: as(user),
          signal: AbortSignal.timeout(10_000),
        });
        const { token } = (await took.json()) as { token: number };
        if (took.status >= 500) throw new Error(`avail: HTTP ${took.status}`);
        if (took.status !== 200) continue;
        const t = performance.now();
        const at = performance.timeOrigin + t;
        await ok(
          fetch(`${api.url}/locks/${lock}/release`, {
            method: 'POST',
            headers: as(user),
            signal: AbortSignal.timeout(10_000),
          }),
        );
        released.push({ key: `${lock}:${token}`, at, answer: performance.now() - t });
        await sleep(50);
      }
    };
    const checks: number[] = [];
    const bareChecks: number[] = [];
    const checker = async () => {
      let i = 0;
      while (performance.now() < end) {
        const lock = nth(names, i * 13);
        const api = nth(apis, i++);
        let t = performance.now();
        await ok(
          fetch(`${api.url}/locks/${lock}/check`, {
            headers: json,
            signal: AbortSignal.timeout(10_000),
          }),
        );
        checks.push(performance.now() - t);
        t = performance.now();
        await ok(fetch(`${bare.url}/`, { headers: json, signal: AbortSignal.timeout(10_000) }));
        bareChecks.push(performance.now() - t);
      }
    };
    await Promise.all([churner('churn-a'), churner('churn-b'), checker()]);
    await sleep(1000);

    // Release to frame, for each subscriber of each released lock.
    const got = new Map<string, number[]>();
    for (const c of crowds)
      for (const [key, times] of await receiptsOf(c))
        got.set(key, [...(got.get(key) ?? []), ...times]);
    const toFrame: number[] = [];
    let missing = 0;
    for (const r of released) {
      const lock = nth(r.key.split(':'), 0);
      const expected = crowds.reduce((n, c) => n + (c.subscribers.get(lock) ?? 0), 0);
      const times = got.get(r.key) ?? [];
      missing += Math.max(0, expected - times.length);
      for (const at of times) toFrame.push(at - r.at);
    }
    if (missing) throw new Error(`${missing} subscribers never got their released frame`);
    const frame = stats(toFrame);
    const answer = stats(released.map((r) => r.answer));
    const mib = (kib: number) => kib / 1024;
    console.error(
      `[bench] ${w}: ${released.length} releases, ${toFrame.length} frames, ${checks.length} checks`,
    );
    return [
      row(
        w,
        'apply to all Ready',
        allReady / 1000,
        's',
        `${size.locks} raw Lease creates`,
        rawCreates / 1000,
        {
          text: 'value < 60 s',
          test: (_r, v) => v < 60,
        },
      ),
      row(
        w,
        'new Lock to first grant p99',
        stats(firstGrant).p99,
        'ms',
        'raw Lease create p99',
        stats(rawCreate).p99,
        {
          text: 'value < 2000 ms',
          test: (_r, v) => v < 2000,
        },
      ),
      row(
        w,
        'check p99 under load',
        stats(checks).p99,
        'ms',
        'bare node:http p99',
        stats(bareChecks).p99,
        {
          text: 'value < 50 ms',
          test: (_r, v) => v < 50,
        },
      ),
      row(w, 'release to frame p99', frame.p99, 'ms', 'answer to the release p99', answer.p99, {
        text: 'value < 100 ms',
        test: (_r, v) => v < 100,
      }),
      row(
        w,
        'api-server RSS (largest replica)',
        mib(rss),
        'MiB',
        'the same at start',
        mib(rssAtStart),
        {
          text: 'value < 300 MiB',
          test: (_r, v) => v < 300,
        },
      ),
      row(
        w,
        'controller RSS',
        mib(controllerRss),
        'MiB',
        'the same at start',
        mib(controllerAtStart),
        {
          text: 'value < 300 MiB',
          test: (_r, v) => v < 300,
        },
      ),
      row(
        w,
        'apiserver requests when idle',
        idle.total,
        'req/s',
        'control plane alone',
        idleFloor.total,
      ),
      row(
        w,
        'of which not watches or Lease renewals',
        idle.other,
        'req/s',
        'control plane alone',
        idleFloor.other,
        // No polling and no status writes: only the controller's leader-election renewals
        // (GET and PUT every 2 s) and each informer's watch, re-opened every 25 s.
        { text: 'value <= floor', test: (_r, v) => v <= idleFloor.other },
      ),
    ];
  } finally {
    crowds.forEach((c) => c.child.kill('SIGKILL'));
    procs.forEach((p) => p.stop());
  }
}
