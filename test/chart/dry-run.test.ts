import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { get, one, render, type Manifest } from '../support/helm.ts';
import { applyManifests, binPath, createNamespace, kubectl } from '../support/kube.ts';

/** The chart's options for kube-prometheus-stack installs and their pods, on a real kube-apiserver. */
describe('the options for kube-prometheus-stack installs, by the API server', () => {
  beforeAll(async () => {
    for (const group of ['prometheus-operator', 'gateway-api']) {
      const dir = join(binPath('crds'), group);
      for (const file of readdirSync(dir)) {
        const result = await kubectl('apply', '--server-side', '-f', join(dir, file));
        expect(result.code, result.stderr).toBe(0);
      }
    }
    await vi.waitFor(
      async () => {
        const crd = await kubectl('get', 'crd', 'podmonitors.monitoring.coreos.com');
        if (crd.code !== 0) throw new Error(crd.stderr);
      },
      { timeout: 30_000, interval: 500 },
    );
  });

  it('accepts the PodMonitor, relabelings, rule overrides, spread, Gateway timeouts and nginx annotations', async () => {
    const namespace = await createNamespace('chart-options');
    const monitoring = {
      'monitoring.enabled': 'true',
      'monitoring.serviceMonitor.enabled': 'false',
      'monitoring.podMonitor.enabled': 'true',
      'monitoring.podMonitor.relabelings[0].targetLabel': 'cluster',
      'monitoring.podMonitor.relabelings[0].replacement': 'eu-1',
      'monitoring.podMonitor.metricRelabelings[0].sourceLabels[0]': '__name__',
      'monitoring.podMonitor.metricRelabelings[0].regex': 'nodejs_.*',
      'monitoring.podMonitor.metricRelabelings[0].action': 'drop',
      'monitoring.grafanaUrl': 'https://grafana.example.com',
      'monitoring.prometheusRule.runbookUrlBase': 'https://wiki.example.com/runbooks#',
      'monitoring.prometheusRule.additionalRuleLabels.team': 'platform',
      'monitoring.prometheusRule.alerts.RetrospectiveAPIDown.severity': 'warning',
      'apiServer.topologySpread.topologyKey': 'topology.kubernetes.io/zone',
      'apiServer.topologySpread.whenUnsatisfiable': 'DoNotSchedule',
    };
    for (const values of [
      {
        ...monitoring,
        'httpRoute.enabled': 'true',
        'httpRoute.parentRefs[0].name': 'gw',
        'httpRoute.timeouts.request': '10m',
        'httpRoute.timeouts.backendRequest': '5m',
      },
      { ...monitoring, 'ingress.enabled': 'true', 'ingress.className': 'nginx' },
    ]) {
      const manifests = await render(values, { namespace });
      expect(manifests.map((m) => m.kind)).toContain('PodMonitor');
      const result = await applyManifests(manifests, namespace);
      expect(result.code, `${JSON.stringify(values)}\n${result.stderr}`).toBe(0);
    }
  });

  it("admits OpenShift's security context (no fixed UID, GID or fsGroup) under the restricted standard", async () => {
    const namespace = await createNamespace('chart-openshift');
    const label = await kubectl(
      'label',
      'namespace',
      namespace,
      'pod-security.kubernetes.io/enforce=restricted',
      'pod-security.kubernetes.io/enforce-version=latest',
    );
    expect(label.code, label.stderr).toBe(0);
    const values: Record<string, string> = {};
    for (const component of ['apiServer', 'controller', 'tests'])
      for (const key of ['runAsUser', 'runAsGroup', 'fsGroup'])
        values[`${component}.podSecurityContext.${key}`] = 'null';
    const manifests = await render(values, { namespace });
    const accounts = await applyManifests(
      manifests.filter((m) => m.kind === 'ServiceAccount'),
      namespace,
      [],
    );
    expect(accounts.code, accounts.stderr).toBe(0);
    const podOf = (m: Manifest) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${m.metadata.name}-pod` },
      spec: get(m, 'spec.template.spec'),
    });
    const pods = [
      podOf(one(manifests, 'Deployment', 'rel-retrospective-api-server')),
      podOf(one(manifests, 'Deployment', 'rel-retrospective-controller')),
      one(manifests, 'Pod'),
    ];
    for (const pod of pods) expect(get(pod, 'spec.securityContext.runAsUser')).toBeUndefined();
    const admitted = await applyManifests(pods, namespace);
    expect(admitted.code, admitted.stderr).toBe(0);
    expect(admitted.stdout.match(/created \(server dry run\)/g)).toHaveLength(3);
  });
});
