import { clusterDown, clusterUp } from '../../hack/cluster/cluster.ts';
import { peer, post, stats } from '../lib.ts';
import { as, namespace, replicas } from '../workloads.ts';
const dir = '.cache/prof-cluster';
const cluster = await clusterUp(dir);
const ctx = { smoke: false, kubeconfig: cluster.kubeconfig, etcd: `http://127.0.0.1:${cluster.etcdPort}` };
const apis = await replicas(ctx, await namespace(ctx, 'prof'), 2);
async function run(n: number) {
  const gaps: number[] = []; let released: number | undefined;
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const url = apis[i % 2]?.url ?? ''; const user = as(`client-${i}`);
    while (gaps.length < n) {
      if ((await post(`${url}/retrospective/avail?wait=60`, user)) !== 200) continue;
      if (released !== undefined) { gaps.push(performance.now() - released); if (last === i % 2) same++; }
      last = i % 2;
      released = performance.now();
      await post(`${url}/retrospective/release`, user);
    }
  }));
  return gaps.slice(0, n);
}
const t0 = performance.now();
async function counts() {
  let ok = 0, conflict = 0;
  for (const a of apis) {
    const m = await (await fetch(`${a.metricsUrl}/metrics`)).text();
    for (const l of m.split('\n')) {
      if (l.startsWith('retrospective_kube_requests_total{verb="update",code="2xx"}')) ok += Number(l.split(' ')[1]);
      if (l.startsWith('retrospective_kube_requests_total{verb="update",code="409"}')) conflict += Number(l.split(' ')[1]);
    }
  }
  return { ok, conflict };
}
let last = -1; let same = 0;
for (let r = 0; r < Number(process.env.R ?? 12); r++) {
  const c0 = await counts(); same = 0;
  const o = stats(await run(Number(process.env.N ?? 300)));
  const c1 = await counts();
  const m = process.env.MUTEX ? stats(await peer(['mutex', '-endpoints', ctx.etcd, '-waiters', '20', '-handovers', '100'])) : undefined;
  console.log(`t=${((performance.now() - t0) / 1000).toFixed(0)}s writes ${c1.ok - c0.ok} 409s ${c1.conflict - c0.conflict} same ${same} ours p50 ${o.p50.toFixed(2)} p99 ${o.p99.toFixed(1)}${m ? ` | mutex p50 ${m.p50.toFixed(2)} ratio ${(o.p50 / m.p50).toFixed(2)}` : ''}`);
}
apis.forEach((a) => a.stop());
await clusterDown(dir);
