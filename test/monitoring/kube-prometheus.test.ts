import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { binPath, repoRoot } from '../support/kube.ts';

/**
 * kube-prometheus cannot be vendored here (no GitHub), so main.jsonnet is evaluated against
 * stand-ins written from kube-prometheus's documented interface: `lib/mixin.libsonnet` takes
 * {name, namespace, dashboardFolder, mixin} and returns {prometheusRules, grafanaDashboards};
 * `main.libsonnet` reads values.common.namespace, values.prometheus.namespaces and
 * values.grafana.folderDashboards. This proves the example is valid jsonnet that hands our mixin
 * over through that interface, not that a given kube-prometheus release renders it.
 */
const addMixin = `
function(params) {
  local p = { namespace: 'monitoring', labels: { prometheus: 'k8s' } } + params,
  local alerts = if std.objectHasAll(p.mixin, 'prometheusAlerts') then p.mixin.prometheusAlerts.groups else [],
  local rules = if std.objectHasAll(p.mixin, 'prometheusRules') then p.mixin.prometheusRules.groups else [],
  prometheusRules: {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
    spec: { groups: alerts + rules },
  },
  grafanaDashboards: if std.objectHas(p, 'dashboardFolder') then { [p.dashboardFolder]: p.mixin.grafanaDashboards } else p.mixin.grafanaDashboards,
}`;
const main = `
{
  values:: { common: { namespace: 'default' }, prometheus: { namespaces: ['default', 'kube-system'] }, grafana: { folderDashboards: {} } },
  local v = self.values,
  kubePrometheus: { namespace: { kind: 'Namespace', metadata: { name: v.common.namespace } }, prometheusRule: { kind: 'PrometheusRule' } },
  prometheusOperator: { deployment: { kind: 'Deployment' }, serviceMonitor: { kind: 'ServiceMonitor' }, prometheusRule: { kind: 'PrometheusRule' } },
  alertmanager: { alertmanager: { kind: 'Alertmanager' } },
  blackboxExporter: {},
  grafana: { dashboardDefinitions: { kind: 'ConfigMapList', folders: std.objectFields(v.grafana.folderDashboards), dashboards: v.grafana.folderDashboards } },
  kubeStateMetrics: {},
  kubernetesControlPlane: {},
  nodeExporter: {},
  prometheus: { roleBindingSpecificNamespaces: { kind: 'RoleBindingList', namespaces: v.prometheus.namespaces } },
  prometheusAdapter: {},
}`;

const run = promisify(execFile);
mkdirSync(join(repoRoot, '.cache'), { recursive: true });
const work = mkdtempSync(join(repoRoot, '.cache', 'kube-prometheus-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the kube-prometheus example', () => {
  it('adds the mixin with addMixin, its dashboard in a folder, and our namespace to Prometheus', async () => {
    const lib = join(work, 'vendor/kube-prometheus');
    mkdirSync(join(lib, 'lib'), { recursive: true });
    writeFileSync(join(lib, 'lib/mixin.libsonnet'), addMixin);
    writeFileSync(join(lib, 'main.libsonnet'), main);
    const out = join(work, 'manifests');
    mkdirSync(join(out, 'setup'), { recursive: true });
    const example = resolve(repoRoot, 'manifests/monitoring/kube-prometheus');
    await run(binPath('jsonnet'), [
      '-J',
      join(work, 'vendor'),
      '-J',
      resolve(example, '..'),
      '-m',
      out,
      resolve(example, 'main.jsonnet'),
    ]);
    const read = (name: string) =>
      JSON.parse(readFileSync(join(out, name), 'utf8')) as Record<string, unknown>;

    const rule = read('retrospective-prometheusRule') as {
      metadata: { namespace: string; labels: object };
      spec: { groups: { rules: { alert: string }[] }[] };
    };
    expect(rule.metadata).toMatchObject({ namespace: 'monitoring', labels: { prometheus: 'k8s' } });
    const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toContain('RetrospectiveLockRepeatedlyHeldTooLong');
    expect(alerts).toHaveLength(9);

    const grafana = read('grafana-dashboardDefinitions') as {
      dashboards: Record<string, Record<string, { uid: string }>>;
    };
    expect(grafana.dashboards.Retrospective?.['retrospective.json']?.uid).toBe(
      'retrospective-lock',
    );
    expect(read('prometheus-roleBindingSpecificNamespaces')).toMatchObject({
      namespaces: ['default', 'kube-system', 'retrospective'],
    });
    expect(read('setup/0namespace-namespace')).toMatchObject({ metadata: { name: 'monitoring' } });
  });

  it('pins kube-prometheus to a release', () => {
    const jsonnetfile = JSON.parse(
      readFileSync(
        resolve(repoRoot, 'manifests/monitoring/kube-prometheus/jsonnetfile.json'),
        'utf8',
      ),
    ) as {
      dependencies: { source: { git: { remote: string } }; version: string }[];
    };
    expect(jsonnetfile.dependencies[0]).toMatchObject({
      source: { git: { remote: 'https://github.com/prometheus-operator/kube-prometheus.git' } },
      version: expect.stringMatching(/^v\d+\.\d+\.\d+$/) as unknown,
    });
  });
});
