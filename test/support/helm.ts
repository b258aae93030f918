import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { binPath, repoRoot } from './kube.ts';

export const chartPath = resolve(repoRoot, 'charts/retrospective');
const run = promisify(execFile);

/** A rendered Kubernetes object, loosely typed for assertions. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  readonly [key: string]: unknown;
}

/** The value at a dotted path (`spec.rules.0.host`) of rendered YAML; undefined when absent. */
export function get(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** `--set`-style values as helm arguments. */
const setArgs = (values: Record<string, string>) =>
  Object.entries(values).flatMap(([key, value]) => ['--set', `${key}=${value}`]);

/** Runs helm with the test control plane's kubeconfig, if given. */
export async function helm(args: string[], kubeconfig?: string) {
  try {
    const { stdout, stderr } = await run(binPath('helm'), args, {
      env: {
        ...process.env,
        ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
        HELM_CACHE_HOME: resolve(repoRoot, '.cache/helm'),
        HELM_CONFIG_HOME: resolve(repoRoot, '.cache/helm'),
        HELM_DATA_HOME: resolve(repoRoot, '.cache/helm'),
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    };
  }
}

/** `helm template` of the chart with `values`; throws with helm's message when it refuses. */
export async function render(
  values: Record<string, string> = {},
  options: { release?: string; namespace?: string; apiVersions?: string[] } = {},
): Promise<Manifest[]> {
  const { stdout, stderr, code } = await renderRaw(values, options);
  if (code !== 0) throw new Error(stderr.trim());
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJSON() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

export function renderRaw(
  values: Record<string, string> = {},
  options: { release?: string; namespace?: string; apiVersions?: string[] } = {},
) {
  return helm([
    'template',
    options.release ?? 'rel',
    chartPath,
    '--namespace',
    options.namespace ?? 'ops',
    ...(options.apiVersions ?? []).flatMap((v) => ['--api-versions', v]),
    ...setArgs(values),
  ]);
}

/** The one object of `kind` (and `name`, when given); fails when there is none or several. */
export function one(manifests: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter(
    (m) => m.kind === kind && (name === undefined || m.metadata.name === name),
  );
  if (found.length !== 1)
    throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0]!;
}

export const kinds = (manifests: readonly Manifest[]) => manifests.map((m) => m.kind).sort();
