// make kind-up: one kind cluster with Traefik, the prometheus-operator, a Prometheus and an
// Alertmanager, and the chart installed with monitoring on, every image built here (no registry)
// unless KIND_IMAGES=upstream. Idempotent: a healthy cluster built from the current node image is
// kept, anything else (a stopped node after a Docker restart, a new node image) is recreated.
// Run under hack/docker.sh exec, so DOCKER_HOST points at the daemon to use.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const bin = (tool: string) => resolve(root, 'bin', tool);
export const clusterName = 'retrospective';
const stateDir = resolve(root, '.cache/kind');
export const kubeconfig = join(stateDir, 'kubeconfig');
export const httpPort = Number(process.env.KIND_HTTP_PORT ?? 9080);
const upstream = process.env.KIND_IMAGES === 'upstream';
const versions = Object.fromEntries(
  readFileSync(resolve(root, 'hack/versions.env'), 'utf8')
    .split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l))
    .map((l) => l.split('=') as [string, string]),
);
const image = `retrospective:${/appVersion: "?([^"\n]+)"?/.exec(readFileSync(resolve(root, 'charts/retrospective/Chart.yaml'), 'utf8'))?.[1] ?? 'dev'}`;

const log = (message: string) => process.stderr.write(`[kind] ${message}\n`);

/** Runs a command, output to our stderr; returns its stdout. Throws when it fails. */
function run(
  command: string,
  args: string[],
  options: { input?: string; quiet?: boolean } = {},
): string {
  const result = spawnSync(command, args, {
    input: options.input,
    encoding: 'utf8',
    env: {
      ...process.env,
      KUBECONFIG: kubeconfig,
      PATH: `${resolve(root, 'bin')}:${process.env.PATH ?? ''}`,
    },
    stdio: ['pipe', 'pipe', options.quiet ? 'pipe' : 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed (${String(result.status)}): ${result.stderr}`,
    );
  return result.stdout;
}
const ok = (command: string, args: string[]) => {
  try {
    run(command, args, { quiet: true });
    return true;
  } catch {
    return false;
  }
};
const kubectl = (...args: string[]) => run(bin('kubectl'), args);

/** A step's line: `[n/total] name ...` as it starts, `[n/total] name: done in X s` at its end. */
export const stepLine = (n: number, total: number, name: string, seconds?: number) =>
  `[${n}/${total}] ${name}${seconds === undefined ? ' ...' : `: done in ${seconds.toFixed(0)} s`}`;

/** The steps of `make kind-up`: building images (one step for upstream images, else four), then seven. */
const totalSteps = (upstream ? 1 : 4) + 7;

/** Numbers the steps of one run and says how long each took. */
function counter(total: number) {
  let n = 0;
  const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
    const number = ++n;
    const started = performance.now();
    log(stepLine(number, total, name));
    const result = await fn();
    log(stepLine(number, total, name, (performance.now() - started) / 1000));
    return result;
  };
  /** A step with nothing to do. */
  const skip = (name: string, why: string) => log(`[${++n}/${total}] ${name}: ${why}`);
  return { step, skip };
}
type Step = ReturnType<typeof counter>['step'];

/** The kind cluster config, with the ingress port and the image tags the node image carries. */
export function clusterConfig(port: number): string {
  return readFileSync(resolve(root, 'hack/kind/cluster.yaml'), 'utf8')
    .replace('${KIND_HTTP_PORT}', String(port))
    .replace('${ETCD_TAG}', `${versions.ETCD_VERSION}-0`)
    .replace('${COREDNS_VERSION}', versions.COREDNS_VERSION ?? '');
}

/** True when the cluster exists, its node runs the wanted image, and its API answers. */
function healthy(nodeImage: string): boolean {
  if (!run(bin('kind'), ['get', 'clusters'], { quiet: true }).split('\n').includes(clusterName))
    return false;
  const node = `${clusterName}-control-plane`;
  const inspect = (...args: string[]) =>
    ok('docker', ['inspect', ...args])
      ? run('docker', ['inspect', ...args], { quiet: true }).trim()
      : '';
  // The node image keeps its tag across rebuilds: compare image IDs.
  const state = inspect('-f', '{{.State.Running}} {{.Image}}', node);
  const wanted = `true ${inspect('-f', '{{.Id}}', nodeImage)}`;
  if (state !== wanted) {
    log(
      `the existing cluster is not usable or is out of date (node: ${state || 'missing'}); recreating it`,
    );
    return false;
  }
  run(bin('kind'), ['export', 'kubeconfig', '--name', clusterName, '--kubeconfig', kubeconfig], {
    quiet: true,
  });
  return ok(bin('kubectl'), ['get', '--raw', '/readyz', '--request-timeout=10s']);
}

/** The images to build here and load into the node; the node image. */
async function buildImages(step: Step): Promise<{ node: string; workloads: string[] }> {
  if (upstream) {
    await step(`image ${image} on upstream bases`, () =>
      run(resolve(root, 'hack/image/build.sh'), [image], { quiet: false }),
    );
    return { node: `kindest/node:v${versions.KUBERNETES_VERSION}`, workloads: [image] };
  }
  await step('binaries from Go modules', () => run(resolve(root, 'hack/kind/binaries.sh'), []));
  const node = (
    await step('node image', () => run(resolve(root, 'hack/kind/node-image.sh'), []))
  ).trim();
  const workloads = (
    await step('workload images', () => run(resolve(root, 'hack/kind/images.sh'), []))
  )
    .split('\n')
    .filter(Boolean);
  await step(`image ${image}`, () => run(resolve(root, 'hack/image/build.sh'), [image]));
  return { node, workloads: [...workloads, image] };
}

/** Applies every manifest in `dir` (server-side, so CRDs and big objects fit). */
const applyDir = (dir: string, ...args: string[]) =>
  kubectl('apply', '--server-side', '--force-conflicts', ...args, '-f', dir);

function moduleDir(module: string): string {
  const out = execFileSync('go', ['mod', 'download', '-json', module], {
    cwd: '/tmp',
    encoding: 'utf8',
  });
  return (JSON.parse(out) as { Dir: string }).Dir;
}

/** Everything `make kind-up` does; returns once the chart's pods are ready. */
export async function up(): Promise<void> {
  mkdirSync(stateDir, { recursive: true });
  const { step, skip } = counter(totalSteps);
  const { node, workloads } = await buildImages(step);
  if (!healthy(node)) {
    await step('kind cluster', () => {
      if (ok(bin('kind'), ['get', 'kubeconfig', '--name', clusterName]))
        run(bin('kind'), ['delete', 'cluster', '--name', clusterName]);
      const config = join(stateDir, 'cluster.yaml');
      writeFileSync(config, clusterConfig(httpPort));
      run(bin('kind'), [
        'create',
        'cluster',
        '--name',
        clusterName,
        '--image',
        node,
        '--config',
        config,
        '--kubeconfig',
        kubeconfig,
        '--wait',
        '180s',
      ]);
    });
  } else skip('kind cluster', 'healthy, kept');
  await step(`loading ${workloads.length} images into the node`, () =>
    run(bin('kind'), ['load', 'docker-image', '--name', clusterName, ...workloads]),
  );
  await step('prometheus-operator (CRDs and the manifests of its module)', () => {
    applyDir(resolve(root, 'bin/crds/prometheus-operator'));
    kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all');
    const operator = join(
      moduleDir(
        `github.com/prometheus-operator/prometheus-operator@v${versions.PROMETHEUS_OPERATOR_VERSION}`,
      ),
      'example/rbac/prometheus-operator',
    );
    for (const file of readdirSync(operator).filter((f) => !f.includes('service-monitor')))
      applyDir(join(operator, file));
  });
  await step('Traefik and the monitoring stack', () => {
    applyDir(resolve(root, 'hack/kind/manifests/traefik.yaml'));
    applyDir(resolve(root, 'manifests/monitoring/stack'));
  });
  await step('the chart', () => {
    run(bin('kubectl'), ['apply', '-f', '-'], {
      input: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${clusterName}\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/enforce-version: latest\n`,
    });
    // `helm upgrade` never applies a chart's crds/: apply the Lock CRD first, as users upgrading do.
    kubectl('apply', '--server-side', '-f', resolve(root, 'charts/retrospective/crds'));
    run(bin('helm'), [
      'upgrade',
      '--install',
      clusterName,
      resolve(root, 'charts/retrospective'),
      '--namespace',
      clusterName,
      '--values',
      resolve(root, 'hack/kind/values.yaml'),
      '--wait',
      '--timeout',
      '5m',
    ]);
  });
  await step('everything ready', () => {
    for (const [namespace, kind] of [
      ['default', 'deployment'],
      ['traefik', 'deployment'],
      ['monitoring', 'deployment'],
      [clusterName, 'deployment'],
    ] as const)
      kubectl('rollout', 'status', '--namespace', namespace, kind, '--timeout=300s');
    kubectl(
      'wait',
      '--namespace',
      'monitoring',
      '--for=condition=Available',
      '--timeout=300s',
      'prometheus/kind',
      'alertmanager/kind',
    );
  });
  await step('everything reachable through the Ingress', () => throughIngress());
  log(
    `ready: curl localhost:${httpPort}/retrospective/check ; KUBECONFIG=${kubeconfig} kubectl -n ${clusterName} get lease`,
  );
}

/** What a user reaches through the Ingress once it routes (Traefik learns endpoints by watch). */
const ingressChecks = [
  ['localhost', '/retrospective/check'],
  ['prometheus.localhost', '/-/ready'],
  ['alertmanager.localhost', '/-/ready'],
  ['alerts.localhost', '/'],
] as const;

/**
 * GET http://127.0.0.1:<httpPort><path> as virtual host `host`. node:http, not fetch: fetch
 * drops a Host header it is given.
 */
export function viaIngress(host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: httpPort, path, headers: { Host: host }, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${host}${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Waits (bounded) until every check answers 200 on the published port. */
async function throughIngress(timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (const [host, path] of ingressChecks) {
    let last: string;
    for (;;) {
      try {
        const res = await viaIngress(host, path);
        if (res.status === 200) break;
        last = `${res.status} ${res.body}`;
      } catch (err) {
        last = String(err);
      }
      if (performance.now() > deadline)
        throw new Error(`http://${host}:${httpPort}${path} did not answer 200: ${last}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export function down(): void {
  if (ok(bin('kind'), ['get', 'kubeconfig', '--name', clusterName]))
    run(bin('kind'), ['delete', 'cluster', '--name', clusterName]);
  log('kind cluster deleted');
}

if (import.meta.main) {
  if (process.argv[2] === 'down') down();
  else await up();
}
