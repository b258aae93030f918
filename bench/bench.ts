// make bench: the seven workloads of docs/benchmarks.md on loopback, each figure as a ratio to a
// floor or a peer measured in this same run (absolute numbers on a shared machine are noise;
// ratios within one run are not). Writes bench/results/<timestamp>.json and prints a table.
//   node bench/bench.ts            the full run (about 10 minutes)
//   node bench/bench.ts --smoke    seconds-long runs of each, as `make test` does
// BENCH_CLUSTER_DIR reuses a running control plane there (else one of its own is started);
// BENCH_RESULTS_DIR moves the JSON; BENCH_ONLY=1,3 runs some workloads only.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { clusterDown, clusterUp } from '../hack/cluster/cluster.ts';
import { root, type Proc } from './lib.ts';
import { manyLocks } from './many-locks.ts';
import * as w from './workloads.ts';

// Every spawned server and crowd kills itself with the bench: one exit listener each.
process.setMaxListeners(64);
const smoke = process.argv.includes('--smoke');
const ownCluster = !process.env.BENCH_CLUSTER_DIR;
const clusterDir = process.env.BENCH_CLUSTER_DIR ?? '.cache/bench-cluster';
const only = process.env.BENCH_ONLY?.split(',').map(Number);
const wanted = (n: number) => !only || only.includes(n);

const format = (v: number, unit: string) =>
  !Number.isFinite(v)
    ? String(v)
    : unit === 'req/s'
      ? v.toFixed(v < 10 ? 2 : 0)
      : v.toFixed(unit === 'x' ? 2 : 1);

export function table(rows: readonly w.Row[]): string {
  const lines = [
    '| workload | metric | value | against (same run) | its value | ratio | goal | met |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.workload} | ${r.metric} | ${format(r.value, r.unit)} ${r.unit} | ${r.against} | ${format(r.reference, r.unit)} ${r.unit} | ${r.ratio.toFixed(2)}x | ${r.goal} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} |`,
    );
  return lines.join('\n');
}

async function main() {
  const started = performance.now();
  const cluster = await clusterUp(clusterDir);
  const ctx: w.Context = {
    smoke,
    kubeconfig: cluster.kubeconfig,
    etcd: `http://127.0.0.1:${cluster.etcdPort}`,
  };
  const rows: w.Row[] = [];
  const step = async (n: number, run: () => Promise<w.Row[]>) => {
    if (!wanted(n)) return;
    const t = performance.now();
    rows.push(...(await run()));
    console.error(`[bench] workload ${n} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  };
  let pair: Proc[] = [];
  try {
    await step(1, () => w.checkThroughput(ctx));
    await step(2, () => w.cycleLatency(ctx));
    if ([3, 4, 6].some(wanted)) pair = await w.replicas(ctx, await w.namespace(ctx, 'pair'), 2);
    await step(3, () => w.handoverGap(ctx, pair));
    await step(4, () => w.fairness(ctx, pair));
    await step(5, () => w.fanOut(ctx));
    await step(6, () => w.propagation(ctx, pair));
    pair.forEach((p) => p.stop());
    pair = [];
    await step(7, () => manyLocks(ctx));
  } finally {
    pair.forEach((p) => p.stop());
    if (ownCluster) await clusterDown(clusterDir);
  }
  const seconds = (performance.now() - started) / 1000;
  const at = new Date().toISOString();
  const dir = resolve(root, process.env.BENCH_RESULTS_DIR ?? 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${at.replace(/[:.]/g, '-')}${smoke ? '-smoke' : ''}.json`);
  writeFileSync(file, JSON.stringify({ at, smoke, seconds, rows }, null, 2) + '\n');
  console.log(
    `retrospective bench${smoke ? ' (smoke)' : ''}, ${at}, ${seconds.toFixed(0)} s, loopback, one control plane (2 api-server replicas; 3 in workload 7)\n`,
  );
  console.log(table(rows));
  console.log(`\n(${file})`);
  const missed = rows.filter((r) => r.met === false).length;
  if (missed) console.log(`${missed} goal(s) missed: docs/benchmarks.md says what bounds each.`);
}

if (import.meta.main) await main();
