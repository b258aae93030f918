import type { TestProject } from 'vitest/node';
import { httpPort, kubeconfig, up } from '../../hack/kind/up.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kind: { kubeconfig: string; url: string };
  }
}

/**
 * Makes sure the kind cluster of `make kind-up` is there and healthy (recreating it when not:
 * nothing left running from an earlier session is relied on), then hands its address to the tests.
 */
export default async function setup(project: TestProject) {
  await up();
  project.provide('kind', { kubeconfig, url: `http://127.0.0.1:${httpPort}` });
}
