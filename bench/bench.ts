// make bench: latency and throughput of the lock API on both backends, and the memory cost of
// WebSocket clients, measured in one run on loopback and reported as ratios (absolute numbers
// on a shared machine are noise; ratios within one run are not).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { WebSocket } from 'ws';
import { clusterDown, clusterUp } from '../hack/cluster/cluster.ts';
import { freePort, waitFor } from '../hack/cluster/process.ts';

const root = resolve(import.meta.dirname, '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = 16;

async function server(env: Record<string, string>) {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, ['--expose-gc', resolve(root, 'api-server/dist/main.js')], {
    env: {
      PATH: process.env.PATH,
      LOG_LEVEL: 'warn',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      ...env,
    },
    stdio: 'ignore',
  });
  // The bench's servers never outlive it, whichever way it ends.
  process.once('exit', () => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('api-server', async () => (await fetch(`${url}/readyz`)).ok, 30_000, child.pid);
  if (child.pid === undefined) throw new Error('api-server did not start');
  return { url, pid: child.pid, stop: () => child.kill('SIGTERM') };
}

/** Runs `op` from `workers` loops for `ms`; returns ops/s and latency percentiles in ms. */
async function load(op: (worker: number) => Promise<void>, workers: number, ms: number) {
  const latencies: number[] = [];
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (performance.now() < end) {
        const t = performance.now();
        await op(w);
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { rate: latencies.length / (ms / 1000), p50: at(0.5), p99: at(0.99) };
}

const ok = async (res: Promise<Response>) => {
  const r = await res;
  await r.arrayBuffer();
  if (r.status >= 500) throw new Error(`HTTP ${r.status}`);
};

async function measure(url: string) {
  const check = await load(
    () => ok(fetch(`${url}/retrospective/check`)),
    concurrency,
    seconds * 1000,
  );
  // One user at a time takes, edits and releases: the seed's workflow, end to end.
  const cycle = await load(
    async () => {
      const headers = { Username: 'bench' };
      await ok(fetch(`${url}/retrospective/avail`, { headers }));
      await ok(
        fetch(`${url}/retrospective/change`, {
          method: 'POST',
          headers: { ...headers, Retrospective: 'bench' },
        }),
      );
      await ok(fetch(`${url}/retrospective/release`, { method: 'POST', headers }));
    },
    1,
    seconds * 1000,
  );
  // Someone holds the lock; everyone else is told to wait (each refusal re-reads the store).
  await ok(fetch(`${url}/retrospective/avail`, { headers: { Username: 'holder' } }));
  const wait = await load(
    (w) => ok(fetch(`${url}/retrospective/avail`, { headers: { Username: `waiter-${w}` } })),
    concurrency,
    seconds * 1000,
  );
  await ok(
    fetch(`${url}/retrospective/release`, { method: 'POST', headers: { Username: 'holder' } }),
  );
  return { check, cycle, wait };
}

async function rssKiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
}

async function wsCost(url: string, pid: number, clients: number) {
  const before = await rssKiB(pid);
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<WebSocket>((done, fail) => {
          const ws = new WebSocket(url.replace('http', 'ws') + '/ws');
          ws.once('message', () => done(ws));
          ws.once('error', fail);
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 1000));
  const after = await rssKiB(pid);
  sockets.forEach((s) => s.terminate());
  return ((after - before) * 1024) / clients;
}

async function main() {
  const cluster = await clusterUp('.cache/bench-cluster');
  try {
    const memory = await server({ STORE: 'memory' });
    const lease = await server({
      STORE: 'kubernetes',
      KUBECONFIG: cluster.kubeconfig,
      NAMESPACE: 'default',
    });
    const m = await measure(memory.url);
    const l = await measure(lease.url);
    const perClient = await wsCost(memory.url, memory.pid, 500);
    memory.stop();
    lease.stop();
    const row = (name: string, r: { rate: number; p50: number; p99: number }) =>
      `  ${name.padEnd(34)} ${r.rate.toFixed(0).padStart(7)}/s   p50 ${r.p50.toFixed(2).padStart(7)} ms   p99 ${r.p99.toFixed(2).padStart(7)} ms`;
    console.log(
      `retrospective bench (${seconds} s per measurement, ${concurrency} concurrent clients, loopback)`,
    );
    for (const [name, r] of [
      ['memory', m],
      ['lease', l],
    ] as const) {
      console.log(row(`${name}: check (cache read)`, r.check));
      console.log(row(`${name}: avail refused with Wait`, r.wait));
      console.log(row(`${name}: avail+change+release, 1 user`, r.cycle));
    }
    console.log('ratios (same run):');
    console.log(
      `  lease check p50 / lease Wait p50      ${(l.check.p50 / l.wait.p50).toFixed(2)}  (reads skip the apiserver; refusals re-read it)`,
    );
    console.log(
      `  lease check rate / memory check rate  ${(l.check.rate / m.check.rate).toFixed(2)}  (a Lease backend costs reads nothing)`,
    );
    console.log(
      `  lease cycle p50 / memory cycle p50    ${(l.cycle.p50 / m.cycle.p50).toFixed(1)}  (three Lease writes per cycle)`,
    );
    console.log(
      `  memory per idle WebSocket client      ${(perClient / 1024).toFixed(1)} KiB (500 clients)`,
    );
  } finally {
    await clusterDown('.cache/bench-cluster');
  }
}

await main();
