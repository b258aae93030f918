import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { one, render } from '../support/helm.ts';
import { binPath, repoRoot } from '../support/kube.ts';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'retrospective-rules-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The rules of the chart's PrometheusRule with `values`, as a rule file for promtool. */
async function ruleFile(name: string, values: Record<string, string> = {}) {
  const rule = one(await render({ 'monitoring.enabled': 'true', ...values }), 'PrometheusRule');
  const path = join(work, `${name}.yaml`);
  writeFileSync(path, stringify(rule.spec));
  return path;
}

/** promtool's output, whether it succeeded or not. */
const promtool = (...args: string[]) =>
  run(binPath('promtool'), args).then(
    ({ stdout, stderr }) => `${stdout}${stderr}`,
    (error: unknown) => {
      const e = error as { stdout: string; stderr: string };
      return `${e.stdout}${e.stderr}`;
    },
  );

/** A promtool test file: `tests` run against `rules`. */
function testFile(name: string, rules: string, tests: unknown) {
  const path = join(work, `${name}.test.yaml`);
  writeFileSync(path, stringify({ rule_files: [rules], evaluation_interval: '1m', tests }));
  return path;
}

describe('the alerting rules the chart renders', () => {
  it('are valid Prometheus rules, by default and with every override', async () => {
    expect(await promtool('check', 'rules', await ruleFile('default'))).toMatch(
      /SUCCESS: 9 rules found/,
    );
    const overridden = await ruleFile('overridden', {
      'monitoring.grafanaUrl': 'https://grafana.example.com',
      'monitoring.prometheusRule.runbookUrlBase': 'https://wiki.example.com/runbooks#',
      'monitoring.prometheusRule.additionalRuleLabels.team': 'platform',
      'monitoring.prometheusRule.alerts.RetrospectiveAPIDown.severity': 'warning',
      'monitoring.prometheusRule.alerts.RetrospectiveLockWatchDisconnected.enabled': 'false',
    });
    expect(await promtool('check', 'rules', overridden)).toMatch(/SUCCESS: 8 rules found/);
  });

  it('pass promtool test rules by default: every alert fires and resolves as documented', async () => {
    const tests = parse(
      readFileSync(resolve(repoRoot, 'manifests/monitoring/tests/alerts.test.yaml'), 'utf8'),
    ) as { tests: unknown };
    const out = await promtool(
      'test',
      'rules',
      testFile('alerts', await ruleFile('default'), tests.tests),
    );
    expect(out).toMatch(/SUCCESS/);
    expect(out).not.toMatch(/FAILED/);
  });

  it('with grafanaUrl, a firing alert links to the dashboard at its namespace and lock', async () => {
    const rules = await ruleFile('dashboard', {
      'monitoring.grafanaUrl': 'https://grafana.example.com/',
      'monitoring.prometheusRule.additionalRuleLabels.team': 'platform',
    });
    const controller = 'job="retrospective-controller", namespace="ops", pod="ctl-0"';
    const out = await promtool(
      'test',
      'rules',
      testFile('dashboard', rules, [
        {
          interval: '1m',
          input_series: [
            { series: `up{${controller}}`, values: '0x10' },
            {
              series: `retrospective_lock_held_seconds{${controller}, lock="notes"}`,
              values: '400x10',
            },
            {
              series: `retrospective_lock_holder_info{${controller}, lock="notes", holder="ana"}`,
              values: '1x10',
            },
            {
              series: `retrospective_lock_held_too_long_threshold_seconds{${controller}, lock="notes"}`,
              values: '300x10',
            },
          ],
          alert_rule_test: [
            {
              eval_time: '1m',
              alertname: 'RetrospectiveLockHeldTooLong',
              exp_alerts: [
                {
                  exp_labels: {
                    severity: 'warning',
                    team: 'platform',
                    namespace: 'ops',
                    lock: 'notes',
                    holder: 'ana',
                  },
                  exp_annotations: {
                    summary: 'A lock has been held for longer than the held-too-long threshold.',
                    description: 'ana has held the lock notes in ops for 6m 40s.',
                    runbook_url:
                      'https://github.com/retrospective-dev/retrospective/blob/main/docs/operations.md#retrospectivelockheldtoolong',
                    dashboard_url:
                      'https://grafana.example.com/d/retrospective-lock?var-namespace=ops&var-lock=notes',
                  },
                },
              ],
            },
            {
              eval_time: '6m',
              alertname: 'RetrospectiveControllerDown',
              exp_alerts: [
                {
                  exp_labels: { severity: 'warning', team: 'platform', namespace: 'ops' },
                  exp_annotations: {
                    summary: 'No retrospective controller is up.',
                    description:
                      'Prometheus has no controller target up in ops: holds do not expire and no Events or history are recorded.',
                    runbook_url:
                      'https://github.com/retrospective-dev/retrospective/blob/main/docs/operations.md#retrospectivecontrollerdown',
                    dashboard_url:
                      'https://grafana.example.com/d/retrospective-lock?var-namespace=ops',
                  },
                },
              ],
            },
          ],
        },
      ]),
    );
    expect(out).toMatch(/SUCCESS/);
    expect(out).not.toMatch(/FAILED/);
  });
});
