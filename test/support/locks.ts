import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { crdsEstablished, kubectl, repoRoot } from './kube.ts';

const crd = join(repoRoot, 'charts/retrospective/crds/locks.retrospective.dev.yaml');

/** Installs the chart's Lock CRD and waits until it is served (idempotent; it is cluster-wide). */
export async function installLockCrd(): Promise<void> {
  const applied = await kubectl('apply', '--server-side', '--force-conflicts', '-f', crd);
  if (applied.code !== 0) throw new Error(`could not apply the Lock CRD: ${applied.stderr}`);
  await crdsEstablished(['locks.retrospective.dev']);
}

let files = 0;

/** `kubectl apply -f` of `yaml` in `namespace`, from a file as a user would. */
export async function applyYaml(namespace: string, yaml: string) {
  const dir = join(inject('scratchDir'), 'manifests');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `apply-${process.pid}-${files++}.yaml`);
  writeFileSync(file, yaml);
  return kubectl('apply', '-n', namespace, '-f', file);
}

/** A Lock manifest; `spec` is YAML indented by two spaces (or `  {}`). */
export const lockYaml = (name: string, spec = '  {}') =>
  `apiVersion: retrospective.dev/v1alpha1\nkind: Lock\nmetadata:\n  name: ${name}\nspec:\n${spec}\n`;

/** `kubectl patch lock <name> --type=merge` (of its status with `subresource: 'status'`). */
export function patchLock(namespace: string, name: string, patch: unknown, subresource?: 'status') {
  return kubectl(
    'patch',
    'lock',
    name,
    '-n',
    namespace,
    ...(subresource ? [`--subresource=${subresource}`] : []),
    '--type=merge',
    '-p',
    JSON.stringify(patch),
  );
}
