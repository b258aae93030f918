import { readFileSync } from 'node:fs';
import { clusterDown, clusterUp } from '../../hack/cluster/cluster.ts';
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []; return (Number(f[11]) + Number(f[12])) * 10; };
const dir = '.cache/prof-cluster';
const c = await clusterUp(dir);
let a = cpu(c.apiserverPid), e = cpu(c.etcdPid);
for (let i = 0; i < 12; i++) {
  await new Promise((r) => setTimeout(r, 3000));
  const a2 = cpu(c.apiserverPid), e2 = cpu(c.etcdPid);
  console.log(`t+${(i + 1) * 3}s apiserver ${((a2 - a) / 30).toFixed(0)}% etcd ${((e2 - e) / 30).toFixed(0)}%`);
  a = a2; e = e2;
}
await clusterDown(dir);
