import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyManifests,
  binPath,
  cluster,
  crdsEstablished,
  createNamespace,
  kubectl,
} from '../support/kube.ts';
import { chartPath, get, helm, one, render, renderRaw, type Manifest } from '../support/helm.ts';

const kube = () => cluster().kubeconfig;

/** A fresh namespace that enforces the restricted Pod Security Standard. */
async function restrictedNamespace(prefix: string): Promise<string> {
  const namespace = await createNamespace(prefix);
  const label = await kubectl(
    'label',
    'namespace',
    namespace,
    'pod-security.kubernetes.io/enforce=restricted',
    'pod-security.kubernetes.io/enforce-version=latest',
  );
  expect(label.code, label.stderr).toBe(0);
  return namespace;
}
/** What a release leaves in its namespace, found by the chart's instance label. */
const leftovers = async (namespace: string, release: string) =>
  (
    await kubectl(
      'get',
      'deployments,services,serviceaccounts,roles,rolebindings,configmaps,secrets,ingresses,networkpolicies,poddisruptionbudgets',
      '-n',
      namespace,
      '-l',
      `app.kubernetes.io/instance=${release}`,
      '-o',
      'name',
    )
  ).stdout.trim();
const helmReleaseSecrets = async (namespace: string) =>
  (
    await kubectl('get', 'secrets', '-n', namespace, '-l', 'owner=helm', '-o', 'name')
  ).stdout.trim();

const everything = {
  'monitoring.enabled': 'true',
  'monitoring.additionalLabels.release': 'kube-prometheus-stack',
  'monitoring.alertmanagerConfig.enabled': 'true',
  'monitoring.alertmanagerConfig.webhook.url': 'http://hook.example/alerts',
  'networkPolicy.enabled': 'true',
  'networkPolicy.apiFrom[0].namespaceSelector.matchLabels.name': 'ingress',
  'apiServer.replicaCount': '3',
};

// One file, in order: without the CRDs first, then with them (they are cluster-wide).
// About 12 s alone, up to 40 s beside other files: four helm installs, upgrades and uninstalls,
// and the CRDs' registration, each waiting for the API server.
describe('the chart on a real kube-apiserver', { concurrent: false }, () => {
  it('without the CRDs, monitoring off: install, upgrade with changed values, uninstall leaves nothing', async () => {
    const namespace = await createNamespace('chart-plain');
    const installed = await helm(['install', 'rel', chartPath, '-n', namespace], kube());
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/kubectl -n chart-plain-\w+ get lease retrospective/);
    const upgraded = await helm(
      [
        'upgrade',
        'rel',
        chartPath,
        '-n',
        namespace,
        '--set',
        'apiServer.replicaCount=3',
        '--set',
        'lock.holdTimeoutSeconds=60',
      ],
      kube(),
    );
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const deployment = await kubectl(
      'get',
      'deployment',
      'rel-retrospective-api-server',
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[?(@.name=="HOLD_TIMEOUT_SECONDS")].value}',
    );
    expect(deployment.stdout).toBe('3 60');
    const uninstalled = await helm(['uninstall', 'rel', '-n', namespace, '--wait=false'], kube());
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    expect(await leftovers(namespace, 'rel')).toBe('');
    expect(await helmReleaseSecrets(namespace)).toBe('');
  });

  it('without the CRDs, monitoring on is refused by the API server, naming the missing kinds', async () => {
    const namespace = await createNamespace('chart-nocrd');
    const refused = await helm(
      ['install', 'rel', chartPath, '-n', namespace, '--set', 'monitoring.enabled=true'],
      kube(),
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/ServiceMonitor|PrometheusRule/);
  });

  // Fourteen CRDs and four renders, each a dry run: 16 s alone, over 60 s once in the full suite.
  it(
    'with the prometheus-operator and Gateway API CRDs, every rendered manifest passes a server-side dry run',
    { timeout: 120_000 },
    async () => {
      // One kubectl for all fourteen files: each spawn parses megabytes of schema, and this file
      // shares two cores with the rest of the suite.
      const dirs = ['prometheus-operator', 'gateway-api'].map((group) =>
        join(binPath('crds'), group),
      );
      const result = await kubectl(
        'apply',
        '--server-side',
        '-o',
        'name',
        ...dirs.flatMap((dir) => ['-f', dir]),
      );
      expect(result.code, result.stderr).toBe(0);
      const applied = result.stdout.split('\n').filter(Boolean);
      expect(applied).toHaveLength(dirs.reduce((n, dir) => n + readdirSync(dir).length, 0));
      expect(applied.every((name) => name.startsWith('customresourcedefinition'))).toBe(true);
      // Applied is not served yet: a kind of a CRD not yet Established is unknown to a dry run.
      await crdsEstablished(applied.map((name) => name.slice(name.indexOf('/') + 1)));
      const namespace = await createNamespace('chart-dry');
      for (const values of [
        {},
        {
          ...everything,
          'ingress.enabled': 'true',
          'ingress.className': 'traefik',
          'ingress.tls[0].secretName': 'tls',
          'ingress.tls[0].hosts[0]': 'retrospective.local',
        },
        {
          ...everything,
          'httpRoute.enabled': 'true',
          'httpRoute.parentRefs[0].name': 'gw',
          'httpRoute.hostnames[0]': 'retrospective.local',
        },
        {
          ...everything,
          'monitoring.alertmanagerConfig.webhook.url': '',
          'monitoring.alertmanagerConfig.webhook.urlSecret.name': 'hook',
        },
      ]) {
        const manifests = await render(values, { namespace });
        const result = await applyManifests(manifests, namespace);
        expect(result.code, `${JSON.stringify(values)}\n${result.stderr}`).toBe(0);
        expect(result.stdout.split('\n').filter(Boolean)).toHaveLength(manifests.length);
      }
    },
  );

  it('with the CRDs and everything on: install, upgrade with changed values, uninstall leaves nothing', async () => {
    const namespace = await createNamespace('chart-full');
    const values = Object.entries({ ...everything, 'ingress.enabled': 'true' }).flatMap(
      ([k, v]) => ['--set', `${k}=${v}`],
    );
    const installed = await helm(['install', 'rel', chartPath, '-n', namespace, ...values], kube());
    expect(installed.code, installed.stderr).toBe(0);
    for (const kind of [
      'servicemonitor',
      'prometheusrule',
      'alertmanagerconfig',
      'ingress',
      'networkpolicy',
    ])
      expect((await kubectl('get', kind, '-n', namespace, '-o', 'name')).stdout).not.toBe('');
    const upgraded = await helm(
      [
        'upgrade',
        'rel',
        chartPath,
        '-n',
        namespace,
        ...values,
        '--set',
        'monitoring.serviceMonitor.interval=10s',
        '--set',
        'ingress.enabled=false',
      ],
      kube(),
    );
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(
      (
        await kubectl(
          'get',
          'servicemonitor',
          'rel-retrospective',
          '-n',
          namespace,
          '-o',
          'jsonpath={.spec.endpoints[0].interval}',
        )
      ).stdout,
    ).toBe('10s');
    expect((await kubectl('get', 'ingress', '-n', namespace, '-o', 'name')).stdout).toBe('');
    const uninstalled = await helm(['uninstall', 'rel', '-n', namespace, '--wait=false'], kube());
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    expect(await leftovers(namespace, 'rel')).toBe('');
    const monitoringLeft = await kubectl(
      'get',
      'servicemonitors,prometheusrules,alertmanagerconfigs',
      '-n',
      namespace,
      '-o',
      'name',
    );
    expect(monitoringLeft.stdout.trim()).toBe('');
    expect(await helmReleaseSecrets(namespace)).toBe('');
  });

  it('in a namespace enforcing the restricted Pod Security Standard, the pods of both Deployments are admitted', async () => {
    const namespace = await restrictedNamespace('chart-restricted');
    // The chart's ServiceAccounts first: a Pod naming a missing one is refused for that reason.
    const installed = await helm(['install', 'rel', chartPath, '-n', namespace], kube());
    expect(installed.code, installed.stderr).toBe(0);
    const manifests = await render({}, { namespace });
    type PodSpec = { containers: object[] } & Record<string, unknown>;
    const pods = ['rel-retrospective-api-server', 'rel-retrospective-controller'].map((name) => {
      const deployment = one(manifests, 'Deployment', name);
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...(get(deployment, 'spec.template.metadata') as object),
          name: `${name}-admitted`,
        },
        spec: get(deployment, 'spec.template.spec') as PodSpec,
      };
    });
    // And the helm test pod, as the chart renders it.
    const testPod = one(manifests, 'Pod', 'rel-retrospective-test-api');
    const created = await applyManifests([...pods, testPod], namespace, []);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/rel-retrospective-test-api created/);
    expect(created.stdout).toMatch(/rel-retrospective-api-server-admitted created/);
    expect(created.stdout).toMatch(/rel-retrospective-controller-admitted created/);

    // The namespace does enforce: the same pod without its security context is refused.
    const loose = {
      ...pods[0]!,
      metadata: { name: 'loose' },
      spec: {
        ...pods[0]!.spec,
        securityContext: {},
        containers: pods[0]!.spec.containers.map((c) => ({ ...c, securityContext: {} })),
      },
    };
    const refused = await applyManifests([loose], namespace, []);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/violates PodSecurity "restricted:latest"/);
  });

  it('a value the schema refuses never reaches the cluster', async () => {
    const { code, stderr } = await renderRaw({ 'apiServer.replicas': '2' });
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/additional properties 'replicas' not allowed/);
  });

  // The options for kube-prometheus-stack installs and their pods, by the API server (after the
  // CRDs above are registered).
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
    const namespace = await restrictedNamespace('chart-openshift');
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
