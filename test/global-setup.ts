import type { TestProject } from 'vitest/node';
import { clusterDown, clusterUp, type ClusterState } from '../hack/cluster/cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterState;
  }
}

const dir = '.cache/test-cluster';

/** One control plane per test run; torn down afterwards, also when tests fail. */
export default async function setup(project: TestProject) {
  const state = await clusterUp(dir);
  project.provide('cluster', state);
  return async () => {
    if (!process.env.KEEP_CLUSTER) await clusterDown(dir);
  };
}
