import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { clusterDown, clusterUp, type ClusterState } from '../hack/cluster/cluster.ts';
import { alive } from '../hack/cluster/process.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterState;
    /** A directory of this run's own, for tests that need a control plane to themselves. */
    scratchDir: string;
  }
}

const root = '.cache/test-clusters';

/** Removes control planes left behind by runs that died (their directory names the runner's pid). */
async function sweep(): Promise<void> {
  if (!existsSync(root)) return;
  for (const entry of readdirSync(root)) {
    const owner = Number(entry.split('-')[0]);
    if (!alive(owner)) await clusterDown(join(root, entry));
  }
}

/** One control plane per test run; torn down afterwards, also when tests fail. */
export default async function setup(project: TestProject) {
  await sweep();
  const dir = join(root, String(process.pid));
  const state = await clusterUp(dir);
  project.provide('cluster', state);
  project.provide('scratchDir', join(root, `${process.pid}-scratch`));
  return async () => {
    if (process.env.KEEP_CLUSTER) return;
    await clusterDown(dir);
    await clusterDown(join(root, `${process.pid}-scratch`));
  };
}
