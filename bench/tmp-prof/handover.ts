// Temporary profiling (not committed): hand-overs with CPU per process.
import { readFileSync } from 'node:fs';
import { clusterDown, clusterUp } from '../../hack/cluster/cluster.ts';
import { post, stats } from '../lib.ts';
import { as, namespace, replicas } from '../workloads.ts';

const cpu = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // ms (CLK_TCK 100)
};
const dir = '.cache/prof-cluster';
const cluster = await clusterUp(dir);
const ctx = { smoke: false, kubeconfig: cluster.kubeconfig, etcd: `http://127.0.0.1:${cluster.etcdPort}` };
const apis = await replicas(ctx, await namespace(ctx, 'prof'), 2, JSON.parse(process.env.ENVX ?? '{}'));
const count = Number(process.env.COUNT ?? 3000);
async function run(n: number) {
  const gaps: number[] = [];
  let released: number | undefined;
  const deadline = performance.now() + 120_000;
  await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const url = apis[i % 2]!.url;
      const user = as(`client-${i}`);
      while (gaps.length < n && performance.now() < deadline) {
        if ((await post(`${url}/retrospective/avail?wait=60`, user)) !== 200) continue;
        if (released !== undefined) gaps.push(performance.now() - released);
        released = performance.now();
        await post(`${url}/retrospective/release`, user);
      }
    }),
  );
  return gaps;
}
const pids = { apiserver: cluster.apiserverPid, etcd: cluster.etcdPid, a: apis[0]!.pid, b: apis[1]!.pid, bench: process.pid };
const ctxsw = (pid: number) => { const t = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' '); return Number(t[1]) / 1e6; };
for (let round = 0; round < Number(process.env.ROUNDS ?? 2); round++) {
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpu(p)]));
  const wbefore = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, ctxsw(p)]));
  const t = performance.now();
  const gaps = await run(count);
  if (round === 99) { const { execSync } = await import('node:child_process'); const p = Promise.all([run(50)]); await new Promise((r) => setTimeout(r, 30)); console.log(execSync(`kubectl --kubeconfig ${cluster.kubeconfig} get lease -A -o json`).toString().slice(0, 6000)); await p; }
  const wall = performance.now() - t;
  const per = Object.entries(pids).map(([k, p]) => `${k} ${((cpu(p) - before[k]!) / gaps.length).toFixed(2)}`);
  const waited = Object.entries(pids).map(([k, p]) => `${k} ${((ctxsw(p) - wbefore[k]!) / gaps.length).toFixed(2)}`);
  const s = stats(gaps);
  console.log(`p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} rate ${(gaps.length / wall * 1000).toFixed(0)}/s | cpu ${per.join(', ')} | runq-wait ${waited.join(', ')}`);
}
for (const a of apis) {
  const m = await (await fetch(`${a.metricsUrl}/metrics`)).text();
  console.log(m.split('\n').filter((l) => l.startsWith('retrospective_kube_requests_total') || l.startsWith('retrospective_lease_write')).join('\n'));
}
const { execSync } = await import('node:child_process');
apis.forEach((a) => process.kill(a.pid, 'SIGTERM'));
await new Promise((r) => setTimeout(r, 3000));
apis.forEach((a) => a.stop());
await clusterDown(dir);
