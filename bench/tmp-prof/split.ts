import { clusterDown, clusterUp } from '../../hack/cluster/cluster.ts';
import { post, stats } from '../lib.ts';
import { as, namespace, replicas } from '../workloads.ts';
const dir = '.cache/prof-cluster';
const cluster = await clusterUp(dir);
const ctx = { smoke: false, kubeconfig: cluster.kubeconfig, etcd: `http://127.0.0.1:${cluster.etcdPort}` };
for (let pair = 0; pair < Number(process.env.PAIRS ?? 3); pair++) {
  const apis = await replicas(ctx, await namespace(ctx, 'prof'), 2);
  for (let round = 0; round < 3; round++) {
    const same: number[] = [], cross: number[] = [];
    let released: number | undefined; let last = -1; let n = 0;
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const url = apis[i % 2]?.url ?? '';
      const user = as(`client-${i}`);
      while (n < 300) {
        if ((await post(`${url}/retrospective/avail?wait=60`, user)) !== 200) continue;
        if (released !== undefined) { (last === i % 2 ? same : cross).push(performance.now() - released); n++; }
        released = performance.now(); last = i % 2;
        await post(`${url}/retrospective/release`, user);
      }
    }));
    const all = stats([...same, ...cross]);
    console.log(`pair ${pair} round ${round}: all p50 ${all.p50.toFixed(2)} | same ${same.length} p50 ${stats(same).p50.toFixed(2)} | cross ${cross.length} p50 ${stats(cross).p50.toFixed(2)}`);
  }
  apis.forEach((a) => a.stop());
}
await clusterDown(dir);
