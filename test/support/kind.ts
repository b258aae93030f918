import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { viaIngress as get } from '../../hack/kind/up.ts';
import { binPath } from './kube.ts';

const run = promisify(execFile);
export const namespace = 'retrospective';
export const release = 'retrospective';

/** The Ingress's address on loopback, and the kind cluster's kubeconfig. */
export const kind = () => inject('kind');

/** kubectl against the kind cluster; resolves with the output, rejects when kubectl fails. */
export async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(binPath('kubectl'), args, {
    env: { ...process.env, KUBECONFIG: kind().kubeconfig },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** GET through the Ingress as `host` (the monitoring stack's virtual hosts), parsed as JSON. */
export async function viaIngress<T>(host: string, path: string): Promise<T> {
  const res = await get(host, path);
  if (res.status !== 200) throw new Error(`${host}${path}: ${res.status} ${res.body}`);
  return JSON.parse(res.body) as T;
}

/** An instant PromQL query against the cluster's Prometheus. */
export async function promQuery(query: string) {
  const body = await viaIngress<{
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  }>('prometheus.localhost', `/api/v1/query?query=${encodeURIComponent(query)}`);
  return body.data.result;
}

/** The api-server pods, by name. */
export async function apiPods(): Promise<string[]> {
  const out = await kubectl(
    'get',
    'pods',
    '-n',
    namespace,
    '-l',
    'app.kubernetes.io/component=api-server',
    '--field-selector=status.phase=Running',
    '-o',
    'jsonpath={.items[*].metadata.name}',
  );
  return out.split(' ').filter(Boolean);
}

/** Traefik's access-log lines (it logs only 5xx answers) of the last `since`, e.g. `5m`. */
export async function ingressErrors(since: string): Promise<string[]> {
  const out = await kubectl('logs', '-n', 'traefik', 'deploy/traefik', `--since=${since}`);
  return out.split('\n').filter((line) => line.includes('"DownstreamStatus"'));
}
