import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { binPath, repoRoot } from '../support/kube.ts';

const run = promisify(execFile);
const rules = resolve(repoRoot, 'charts/retrospective/files/prometheus-rules.yaml');

describe('the alerting rules rendered into the chart', () => {
  it('are valid Prometheus rules', async () => {
    const { stdout } = await run(binPath('promtool'), ['check', 'rules', rules]);
    expect(stdout).toMatch(/SUCCESS: 8 rules found/);
  });

  it('pass promtool test rules: every alert fires and resolves as documented', async () => {
    const tests = resolve(repoRoot, 'manifests/monitoring/tests/alerts.test.yaml');
    const { stdout, stderr } = await run(binPath('promtool'), ['test', 'rules', tests]).catch(
      (error: unknown) => error as { stdout: string; stderr: string },
    );
    expect(`${stdout}${stderr}`).toMatch(/SUCCESS/);
    expect(`${stdout}${stderr}`).not.toMatch(/FAILED/);
  });
});
