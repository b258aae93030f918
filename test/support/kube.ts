import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { loadKubeConfig } from '../../runtime/src/kube/client.ts';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const binPath = (tool: string) => resolve(repoRoot, 'bin', tool);

export function cluster() {
  return inject('cluster');
}

/** Admin credentials for the test control plane. */
export function adminConfig(): KubeConfig {
  return loadKubeConfig(cluster().kubeconfig);
}

/** A fresh namespace, so test files never see each other's objects. */
export async function createNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  const core = adminConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name } } });
  // A cluster's controller-manager gives every namespace its `default` ServiceAccount; this
  // control plane has none, and a Pod naming no account is refused without it.
  await core.createNamespacedServiceAccount({
    namespace: name,
    body: { metadata: { name: 'default' } },
  });
  return name;
}

const run = promisify(execFile);

/** Runs bin/kubectl against the test control plane; resolves even when kubectl fails. */
export async function kubectl(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(binPath('kubectl'), args, {
      env: { ...process.env, KUBECONFIG: cluster().kubeconfig },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/**
 * Writes a kubeconfig file that reaches the test control plane through `server` (a loopback proxy
 * of the test's) with admin credentials; returns its path.
 */
/**
 * Waits (30 s at most) until each named CRD is Established, so its kinds are served. Polled rather
 * than `kubectl wait`, which fails at once while a CRD created a moment ago (by this file or
 * another one running beside it) has no conditions yet.
 */
export async function crdsEstablished(names: readonly string[]): Promise<void> {
  let pending = [...names];
  const deadline = performance.now() + 30_000;
  while (pending.length) {
    const got = await kubectl(
      'get',
      'crd', // every one: with a single name kubectl prints the object, not a list
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}',
    );
    const served = new Set(
      got.stdout.split('\n').flatMap((line) => (line.endsWith('=True') ? [line.slice(0, -5)] : [])),
    );
    pending = pending.filter((name) => !served.has(name));
    if (!pending.length) return;
    if (performance.now() > deadline)
      throw new Error(`CRDs not established within 30 s: ${pending.join(', ')} ${got.stderr}`);
    await new Promise((done) => setTimeout(done, 200));
  }
}

export function proxiedKubeconfig(file: string, server: string, namespace: string): string {
  const dir = join(inject('scratchDir'), 'kubeconfigs');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileSync(
    path,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: proxied\n  cluster: {server: "${server}", insecure-skip-tls-verify: true}\nusers:\n- name: admin\n  user: {token: ${cluster().token}}\ncontexts:\n- name: proxied\n  context: {cluster: proxied, user: admin, namespace: ${namespace}}\ncurrent-context: proxied\n`,
  );
  return path;
}

/** A kubeconfig for `serviceAccount` carrying a token from the TokenRequest API. */
export async function serviceAccountConfig(
  namespace: string,
  serviceAccount: string,
): Promise<KubeConfig> {
  const { stdout, stderr, code } = await kubectl(
    'create',
    'token',
    serviceAccount,
    '-n',
    namespace,
  );
  if (code !== 0) throw new Error(`kubectl create token failed: ${stderr}`);
  const admin = adminConfig();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [admin.getCurrentCluster()!],
    users: [{ name: serviceAccount, token: stdout.trim() }],
    contexts: [
      { name: 'sa', cluster: admin.getCurrentCluster()!.name, user: serviceAccount, namespace },
    ],
    currentContext: 'sa',
  });
  return kc;
}

/** The holderIdentity of a Lease, as `kubectl get lease` shows it ('' when free). */
export async function leaseHolder(namespace: string, lease: string): Promise<string> {
  const jsonpath = 'jsonpath={.spec.holderIdentity}';
  return (await kubectl('get', 'lease', lease, '-n', namespace, '-o', jsonpath)).stdout;
}

/** The reasons (or `reason:message` lines) of the Events on a lock's Lease (or its Lock), oldest first. */
export async function leaseEvents(namespace: string, lock = 'retrospective', withMessages = false) {
  return events(namespace, `involvedObject.name=${lock}`, withMessages);
}

/** The reasons of the Events recorded on the `Lock` object itself (declared locks). */
export async function lockObjectEvents(namespace: string, lock: string) {
  return events(namespace, `involvedObject.kind=Lock,involvedObject.name=${lock}`, false);
}

async function events(namespace: string, fieldSelector: string, withMessages: boolean) {
  const format = withMessages ? '{.reason}:{.message}' : '{.reason}';
  const { stdout } = await kubectl(
    'get',
    'events',
    '-n',
    namespace,
    '--field-selector',
    fieldSelector,
    '-o',
    `jsonpath={range .items[*]}${format}{"\\n"}{end}`,
  );
  return stdout.split('\n').filter(Boolean);
}

/**
 * A ServiceAccount `account` in `namespace` bound to a Role of that name with one rule: the
 * identity a test in kubernetes auth mode acts as.
 */
export async function accountWithRole(
  namespace: string,
  account: string,
  rule: { apiGroups: string[]; resources: string[]; resourceNames: string[]; verbs: string[] },
): Promise<void> {
  const admin = adminConfig();
  await admin
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: account } } });
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata: { name: account }, rules: [rule] },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: account },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: account },
      subjects: [{ kind: 'ServiceAccount', name: account, namespace }],
    },
  });
}

/** Applies `manifests` with kubectl in `namespace` (a server-side dry run unless `args` say otherwise). */
export function applyManifests(
  manifests: unknown[],
  namespace: string,
  args: string[] = ['--dry-run=server'],
) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    const child = execFile(
      binPath('kubectl'),
      ['apply', '-n', namespace, ...args, '-f', '-'],
      { env: { ...process.env, KUBECONFIG: cluster().kubeconfig } },
      (error, stdout, stderr) => done({ code: error ? 1 : 0, stdout, stderr }),
    );
    child.stdin?.end(manifests.map((m) => `---\n${stringify(m)}`).join(''));
  });
}
