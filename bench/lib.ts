// What every workload of bench/bench.ts shares: child processes on loopback, load loops and
// percentiles. Every loop here is bounded in time or count.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '../hack/cluster/process.ts';

export const root = resolve(import.meta.dirname, '..');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Proc {
  readonly url: string;
  /** Its metrics port's base URL. */
  readonly metricsUrl: string;
  readonly port: number;
  readonly pid: number;
  stop(): void;
}

/** Runs `node <script>` with `env` plus PORT (and METRICS_PORT), until `readyPath` answers. */
export async function spawnNode(
  script: string,
  env: Record<string, string>,
  readyPath = '/readyz',
  /** The port that answers readyPath: the API port, or the metrics port (a controller's). */
  readyOn: 'port' | 'metrics' = 'port',
): Promise<Proc> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [resolve(root, script)], {
    env: {
      PATH: process.env.PATH,
      LOG_LEVEL: 'warn',
      DRAIN_DELAY_SECONDS: '0',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      // Benchmarks are load on purpose: no rate limit.
      RATE_LIMIT_USER_PER_MINUTE: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Its log (warnings and errors only), the last of it kept to say why it ended, if it does.
  let log = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (log = (log + chunk).slice(-4096)));
  const closed = once(child, 'close').catch(() => undefined);
  // The bench's servers never outlive it, whichever way it ends.
  process.once('exit', () => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const probe = readyOn === 'port' ? url : `http://127.0.0.1:${metricsPort}`;
  await waitFor(
    script,
    async () => (await fetch(`${probe}${readyPath}`)).ok,
    30_000,
    child.pid,
  ).catch(async (error: unknown) => {
    child.kill('SIGKILL');
    // Its last words may still be in the pipe.
    await Promise.race([closed, sleep(1000)]);
    throw new Error(`${String(error)}; its last log:\n${log}`, { cause: error });
  });
  if (child.pid === undefined) throw new Error(`${script} did not start`);
  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    port,
    pid: child.pid,
    stop: () => child.kill('SIGKILL'),
  };
}

/** bench/bare.ts answering every request with the body and content type `url` answers now. */
export async function bareLike(url: string, headers: Record<string, string>): Promise<Proc> {
  const sample = await fetch(url, { headers });
  return spawnNode(
    'bench/bare.ts',
    {
      BARE: 'http',
      BODY: await sample.text(),
      CONTENT_TYPE: sample.headers.get('content-type') ?? '',
    },
    '/',
  );
}

/** Waits (at most 30 s) until the api-server at `url` has its lock: ready is not provisioned. */
export async function provisioned(url: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  while ((await fetch(`${url}/retrospective/check`)).status !== 200) {
    if (performance.now() > deadline) throw new Error(`${url}: the lock never appeared`);
    await sleep(100);
  }
}

/** `list[i % list.length]`: items taken in turn (a list that must not be empty). */
export function nth<T>(list: readonly T[], i: number): T {
  const item = list[i % list.length];
  if (item === undefined) throw new Error('nth of an empty list');
  return item;
}

export interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function stats(samples: readonly number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN, mean };
}

/** Runs `op` in a loop for `ms`; the latencies of its runs in ms. */
export async function loop(op: () => Promise<void>, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t = performance.now();
    await op();
    latencies.push(performance.now() - t);
  }
  return latencies;
}

/** A request that must not fail on the server side; its body is read and dropped. */
export async function ok(res: Promise<Response>): Promise<Response> {
  const r = await res;
  await r.arrayBuffer();
  if (r.status >= 500) throw new Error(`HTTP ${r.status} from ${r.url}`);
  return r;
}

/** Kept-alive loopback connections for `post`: one per client in flight, reused after. */
const keepAlive = new Agent({ keepAlive: true });

/**
 * POSTs with node:http on kept-alive connections: the status, body read and dropped (5xx
 * throws). Cheaper per request than fetch, so a workload of many waiting clients measures the
 * service rather than the bench's own HTTP client on a shared 2-core machine (etcd's Mutex
 * waiters, its peer, are Go).
 */
export function post(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((done, fail) => {
    const req = request(url, { method: 'POST', headers, agent: keepAlive }, (res) => {
      const status = res.statusCode ?? 0;
      // The body is read only to say what went wrong.
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (status >= 500 && body.length < 1000) body += chunk;
      });
      res.once('end', () => {
        if (status >= 500) fail(new Error(`HTTP ${status} from ${url}: ${body.slice(0, 1000)}`));
        else done(status);
      });
      res.once('error', fail);
    });
    req.once('error', fail);
    req.end();
  });
}

const run = promisify(execFile);

/** Runs bin/bench-peers (bench/peers: client-go's leader election, etcd's Mutex); gaps in ms. */
export async function peer(args: string[]): Promise<number[]> {
  const { stdout } = await run(resolve(root, 'bin/bench-peers'), args, {
    timeout: 6 * 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return (JSON.parse(stdout) as { samples: number[] }).samples;
}

/** Resident memory of a process, in KiB. */
export async function rssKiB(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
}
