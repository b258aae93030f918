import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { alive, daemon, freePort, terminate, waitFor } from './process.ts';

/** Where a local control plane keeps its data, keys, logs and kubeconfig. */
export interface ClusterState {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly server: string;
  readonly token: string;
  etcdPort: number;
  etcdPeerPort: number;
  readonly apiserverPort: number;
  etcdPid: number;
  apiserverPid: number;
}

const bin = (name: string) => resolve(import.meta.dirname, '../../bin', name);
const statePath = (dir: string) => join(dir, 'state.json');

export function readState(dir: string): ClusterState | undefined {
  const path = statePath(dir);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as ClusterState) : undefined;
}

const writeState = (state: ClusterState) =>
  writeFileSync(statePath(state.dir), JSON.stringify(state, null, 2));

function get(url: string, token?: string): Promise<number> {
  return new Promise((resolveStatus, reject) => {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const req = request(url, { headers, rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolveStatus(res.statusCode ?? 0);
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function healthy(state: ClusterState): Promise<boolean> {
  return (await get(`${state.server}/readyz`, state.token).catch(() => 0)) === 200;
}

function spawnEtcd(state: ClusterState): number {
  const client = `http://127.0.0.1:${state.etcdPort}`;
  const peer = `http://127.0.0.1:${state.etcdPeerPort}`;
  return daemon(
    bin('etcd'),
    [
      '--name=local',
      `--data-dir=${join(state.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=local=${peer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    join(state.dir, 'etcd.log'),
  );
}

/** Starts etcd on two fresh loopback ports, trying again if a port was taken meanwhile. */
async function startEtcd(state: ClusterState): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    state.etcdPort = await freePort();
    do state.etcdPeerPort = await freePort();
    while (state.etcdPeerPort === state.etcdPort || state.etcdPeerPort === state.apiserverPort);
    state.etcdPid = spawnEtcd(state);
    writeState(state);
    try {
      const health = `http://127.0.0.1:${state.etcdPort}/health`;
      await waitFor(
        `etcd (log: ${join(state.dir, 'etcd.log')})`,
        async () => (await fetch(health)).ok,
        30_000,
        state.etcdPid,
      );
      return;
    } catch (error) {
      await terminate(state.etcdPid);
      if (attempt === 3) throw error;
    }
  }
}

/** Starts kube-apiserver for an existing state; also used by fault tests to restart it. */
export async function startApiserver(state: ClusterState): Promise<void> {
  const issuer = 'https://kubernetes.default.svc.cluster.local';
  state.apiserverPid = daemon(
    bin('kube-apiserver'),
    [
      `--etcd-servers=http://127.0.0.1:${state.etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${state.apiserverPort}`,
      `--cert-dir=${join(state.dir, 'pki')}`,
      `--token-auth-file=${join(state.dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${issuer}`,
      `--api-audiences=${issuer}`,
      `--service-account-key-file=${join(state.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(state.dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--profiling=false',
      '--v=1',
      // No Service endpoints on a loopback-only control plane.
      '--endpoint-reconciler-type=none',
    ],
    join(state.dir, 'kube-apiserver.log'),
  );
  writeState(state);
  const log = join(state.dir, 'kube-apiserver.log');
  await waitFor(
    `kube-apiserver /readyz (log: ${log})`,
    () => healthy(state),
    90_000,
    state.apiserverPid,
  );
}

export async function stopApiserver(state: ClusterState): Promise<void> {
  await terminate(state.apiserverPid);
}

function writeKubeconfig(state: ClusterState): void {
  const ca = Buffer.from(readFileSync(join(state.dir, 'pki', 'apiserver.crt'))).toString('base64');
  writeFileSync(
    state.kubeconfig,
    `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "${state.server}", certificate-authority-data: ${ca}}
users:
- name: admin
  user: {token: ${state.token}}
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
`,
    { mode: 0o600 },
  );
}

/** Starts etcd and kube-apiserver in `dir`, or does nothing when they already run there. */
export async function clusterUp(dirArg: string): Promise<ClusterState> {
  const dir = resolve(dirArg);
  const existing = readState(dir);
  if (
    existing &&
    alive(existing.etcdPid) &&
    alive(existing.apiserverPid) &&
    (await healthy(existing))
  )
    return existing;
  await clusterDown(dir);
  mkdirSync(join(dir, 'pki'), { recursive: true });
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.key'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  writeFileSync(join(dir, 'sa.pub'), keys.publicKey.export({ type: 'spki', format: 'pem' }));
  const token = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,system:masters\n`, { mode: 0o600 });
  const apiserverPort = await freePort();
  const state: ClusterState = {
    dir,
    token,
    etcdPort: 0,
    etcdPeerPort: 0,
    apiserverPort,
    etcdPid: 0,
    apiserverPid: 0,
    kubeconfig: join(dir, 'kubeconfig'),
    server: `https://127.0.0.1:${apiserverPort}`,
  };
  await startEtcd(state);
  await startApiserver(state);
  writeKubeconfig(state);
  return state;
}

/** Stops both processes and removes everything in `dir`. */
export async function clusterDown(dirArg: string): Promise<void> {
  const dir = resolve(dirArg);
  const state = readState(dir);
  if (state) {
    await terminate(state.apiserverPid);
    await terminate(state.etcdPid);
  }
  rmSync(dir, { recursive: true, force: true });
}
