import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { binPath } from '../support/kube.ts';
import { kind, namespace, release } from '../support/kind.ts';

/** `helm test`: the chart's own test pod checks the API and metrics through the Service. */
describe('helm test on kind', () => {
  it('passes: the API answers through its Service and the metrics port serves the lock', async () => {
    const { stdout } = await promisify(execFile)(
      binPath('helm'),
      ['test', release, '--namespace', namespace, '--logs', '--timeout', '2m'],
      { env: { ...process.env, KUBECONFIG: kind().kubeconfig } },
    );
    expect(stdout).toMatch(/Phase:\s+Succeeded/);
    expect(stdout).toMatch(/ok http:\/\/retrospective-api-server:80\/openapi.json/);
    expect(stdout).toMatch(/ok http:\/\/retrospective-api-server:8080\/metrics/);
  });
});
