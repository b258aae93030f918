import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { valueRows } from '../../hack/chart-docs.ts';
import {
  chartPath,
  get,
  helm,
  kinds,
  one,
  render,
  renderRaw,
  type Manifest,
} from '../support/helm.ts';

/** The options for kube-prometheus-stack installs and their pods: one test per value. */
const monitoring = { 'monitoring.enabled': 'true' };

interface Rule {
  alert: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
const rulesOf = async (values: Record<string, string>) =>
  (
    get(one(await render({ ...monitoring, ...values }), 'PrometheusRule'), 'spec.groups') as {
      name: string;
      rules: Rule[];
    }[]
  ).flatMap((g) => g.rules);
const mixin = (
  parse(readFileSync(resolve(chartPath, 'files/prometheus-rules.yaml'), 'utf8')) as {
    groups: { rules: Rule[] }[];
  }
).groups.flatMap((g) => g.rules);

describe('the PrometheusRule, from the mixin with overrides', () => {
  it("has no dashboard_url by default, and the mixin's runbook links", async () => {
    const rules = await rulesOf({});
    expect(rules.map((r) => r.alert)).toEqual(mixin.map((r) => r.alert));
    for (const rule of rules) {
      expect(rule.annotations.dashboard_url).toBeUndefined();
      expect(rule.annotations.runbook_url).toBe(
        `https://github.com/retrospective-dev/retrospective/blob/main/docs/operations.md#${rule.alert.toLowerCase()}`,
      );
    }
  });

  it('pages (critical) only when the API is down; every other alert is a warning', async () => {
    const severities = Object.fromEntries(
      (await rulesOf({})).map((r) => [r.alert, r.labels.severity]),
    );
    expect(severities).toEqual({
      RetrospectiveLockHeldTooLong: 'warning',
      RetrospectiveLockRepeatedlyHeldTooLong: 'warning',
      RetrospectiveLockFailureRatioHigh: 'warning',
      RetrospectiveAPIDown: 'critical',
      RetrospectiveControllerDown: 'warning',
      RetrospectiveNoControllerLeader: 'warning',
      RetrospectiveKubernetesAPIErrors: 'warning',
      RetrospectiveConnectionsDropped: 'warning',
      RetrospectiveLockWatchDisconnected: 'warning',
    });
  });

  it('runbookUrlBase: every runbook_url is the base and the alert name in lower case', async () => {
    const rules = await rulesOf({
      'monitoring.prometheusRule.runbookUrlBase': 'https://wiki.example.com/runbooks#',
    });
    expect(rules.map((r) => r.annotations.runbook_url)).toEqual(
      mixin.map((r) => `https://wiki.example.com/runbooks#${r.alert.toLowerCase()}`),
    );
  });

  it('additionalRuleLabels: on every alert, beside its severity; severity itself is refused there', async () => {
    const rules = await rulesOf({
      'monitoring.prometheusRule.additionalRuleLabels.team': 'platform',
      'monitoring.prometheusRule.additionalRuleLabels.routing': 'chat',
    });
    expect(rules.map((r) => r.labels)).toEqual(
      mixin.map((r) => ({ ...r.labels, team: 'platform', routing: 'chat' })),
    );
    const severity = await renderRaw({
      'monitoring.prometheusRule.additionalRuleLabels.severity': 'critical',
    });
    expect(severity.stderr).toMatch(
      /at '\/monitoring\/prometheusRule\/additionalRuleLabels\/severity'/,
    );
    const badName = await renderRaw({
      'monitoring.prometheusRule.additionalRuleLabels.my-team': 'x',
    });
    expect(badName.stderr).toMatch(/additional properties 'my-team' not allowed/);
  });

  it('alerts.<name>.enabled=false leaves that alert out, and a group left empty goes too', async () => {
    const without = await rulesOf({
      'monitoring.prometheusRule.alerts.RetrospectiveLockWatchDisconnected.enabled': 'false',
      'monitoring.prometheusRule.alerts.RetrospectiveAPIDown.enabled': 'true',
    });
    expect(without.map((r) => r.alert)).toEqual(
      mixin.map((r) => r.alert).filter((a) => a !== 'RetrospectiveLockWatchDisconnected'),
    );
    const lockAlerts = [
      'RetrospectiveLockHeldTooLong',
      'RetrospectiveLockRepeatedlyHeldTooLong',
      'RetrospectiveLockFailureRatioHigh',
    ];
    const ms = await render({
      ...monitoring,
      ...Object.fromEntries(
        lockAlerts.map((a) => [`monitoring.prometheusRule.alerts.${a}.enabled`, 'false']),
      ),
    });
    const groups = get(one(ms, 'PrometheusRule'), 'spec.groups') as { name: string }[];
    expect(groups.map((g) => g.name)).toEqual(['retrospective-components']);
  });

  it("alerts.<name>.severity replaces that alert's severity only; unknown alerts and severities are refused", async () => {
    const rules = await rulesOf({
      'monitoring.prometheusRule.alerts.RetrospectiveLockFailureRatioHigh.severity': 'critical',
    });
    expect(rules.map((r) => r.labels.severity)).toEqual(
      mixin.map((r) =>
        r.alert === 'RetrospectiveLockFailureRatioHigh' ? 'critical' : r.labels.severity,
      ),
    );
    expect(
      (await renderRaw({ 'monitoring.prometheusRule.alerts.RetrospectiveTypo.enabled': 'false' }))
        .stderr,
    ).toMatch(
      /at '\/monitoring\/prometheusRule\/alerts': additional properties 'RetrospectiveTypo'/,
    );
    expect(
      (
        await renderRaw({
          'monitoring.prometheusRule.alerts.RetrospectiveAPIDown.severity': 'page',
        })
      ).stderr,
    ).toMatch(/at '\/monitoring\/prometheusRule\/alerts\/RetrospectiveAPIDown\/severity'/);
  });

  it('grafanaUrl: every alert links to the dashboard (uid from the rendered dashboard) at its namespace and lock', async () => {
    const dashboard = JSON.parse(
      readFileSync(resolve(chartPath, 'files/dashboards/retrospective.json'), 'utf8'),
    ) as { uid: string };
    const rules = await rulesOf({ 'monitoring.grafanaUrl': 'https://grafana.example.com/' });
    for (const rule of rules)
      expect(rule.annotations.dashboard_url).toBe(
        `https://grafana.example.com/d/${dashboard.uid}?var-namespace={{ $labels.namespace }}{{ with $labels.lock }}&var-lock={{ . }}{{ end }}`,
      );
    expect((await renderRaw({ 'monitoring.grafanaUrl': 'grafana.local' })).stderr).toMatch(
      /at '\/monitoring\/grafanaUrl'/,
    );
  });
});

describe("the dashboard's link to the management view", () => {
  const viewUrl = async (values: Record<string, string>) => {
    const maps = (await render({ ...monitoring, ...values })).filter(
      (m) => m.kind === 'ConfigMap' && m.metadata.name.endsWith('-dashboard'),
    );
    expect(maps).toHaveLength(1);
    const data = get(maps[0], 'data') as Record<string, string>;
    const dashboard = JSON.parse(data['retrospective.json'] ?? '{}') as {
      templating: { list: { name: string; query: string; current?: { value: string } }[] };
    };
    const variable = dashboard.templating.list.find((v) => v.name === 'view_url');
    return [variable?.query, variable?.current?.value];
  };

  it("goes to the Ingress's first host (https when it has TLS), the HTTPRoute's, or the value", async () => {
    expect(await viewUrl({})).toEqual([
      'http://retrospective.local/',
      'http://retrospective.local/',
    ]);
    expect(
      await viewUrl({ 'ingress.enabled': 'true', 'ingress.hosts[0]': 'locks.example' }),
    ).toEqual(['http://locks.example/', 'http://locks.example/']);
    expect(
      await viewUrl({
        'ingress.enabled': 'true',
        'ingress.hosts[0]': 'locks.example',
        'ingress.tls[0].secretName': 'cert',
        'ingress.tls[0].hosts[0]': 'locks.example',
      }),
    ).toEqual(['https://locks.example/', 'https://locks.example/']);
    expect(
      await viewUrl({
        'httpRoute.enabled': 'true',
        'httpRoute.hostnames[0]': 'gw.example',
        'httpRoute.parentRefs[0].name': 'gw',
      }),
    ).toEqual(['https://gw.example/', 'https://gw.example/']);
    expect(
      await viewUrl({
        'ingress.enabled': 'true',
        'monitoring.dashboard.viewUrl': 'https://x.example/view/',
      }),
    ).toEqual(['https://x.example/view/', 'https://x.example/view/']);
    // A wildcard host is no address: the first host that is one.
    expect(
      await viewUrl({
        'ingress.enabled': 'true',
        'ingress.hosts[0]': '*.example',
        'ingress.hosts[1]': 'locks.example',
      }),
    ).toEqual(['http://locks.example/', 'http://locks.example/']);
  });
});

describe('values.schema.json descriptions', () => {
  it('describe every documented value with its values.yaml comment', () => {
    const { rows } = valueRows(readFileSync(resolve(chartPath, 'values.yaml'), 'utf8'));
    const schema = JSON.parse(readFileSync(resolve(chartPath, 'values.schema.json'), 'utf8')) as {
      properties?: Record<string, unknown>;
    };
    const described = (key: string) =>
      key.split('.').reduce<unknown>((node, k) => get(node, `properties.${k}`), schema) as
        { description?: string } | undefined;
    expect(rows.length).toBeGreaterThan(100);
    for (const row of rows) expect(described(row.key)?.description, row.key).toBe(row.description);
  });
});

describe('scraping: ServiceMonitor relabelings, or a PodMonitor', () => {
  it('serviceMonitor.relabelings and metricRelabelings go on its endpoint; none by default', async () => {
    const plain = one(await render(monitoring), 'ServiceMonitor');
    expect(get(plain, 'spec.endpoints.0.relabelings')).toBeUndefined();
    expect(get(plain, 'spec.endpoints.0.metricRelabelings')).toBeUndefined();
    const sm = one(
      await render({
        ...monitoring,
        'monitoring.serviceMonitor.relabelings[0].targetLabel': 'cluster',
        'monitoring.serviceMonitor.relabelings[0].replacement': 'eu-1',
        'monitoring.serviceMonitor.metricRelabelings[0].sourceLabels[0]': '__name__',
        'monitoring.serviceMonitor.metricRelabelings[0].regex': 'nodejs_.*',
        'monitoring.serviceMonitor.metricRelabelings[0].action': 'drop',
      }),
      'ServiceMonitor',
    );
    expect(get(sm, 'spec.endpoints.0.relabelings')).toEqual([
      { targetLabel: 'cluster', replacement: 'eu-1' },
    ]);
    expect(get(sm, 'spec.endpoints.0.metricRelabelings')).toEqual([
      { sourceLabels: ['__name__'], regex: 'nodejs_.*', action: 'drop' },
    ]);
    expect(
      (await renderRaw({ 'monitoring.serviceMonitor.relabelings[0].action': 'delete' })).stderr,
    ).toMatch(/at '\/monitoring\/serviceMonitor\/relabelings\/0\/action'/);
  });

  it('podMonitor: the same job names from a pod label, its own interval, timeout and relabelings, instead of the ServiceMonitor', async () => {
    expect(kinds(await render(monitoring))).not.toContain('PodMonitor');
    const ms = await render({
      ...monitoring,
      'monitoring.serviceMonitor.enabled': 'false',
      'monitoring.podMonitor.enabled': 'true',
      'monitoring.podMonitor.interval': '15s',
      'monitoring.podMonitor.scrapeTimeout': '5s',
      'monitoring.podMonitor.relabelings[0].targetLabel': 'cluster',
      'monitoring.podMonitor.relabelings[0].replacement': 'eu-1',
      'monitoring.podMonitor.metricRelabelings[0].regex': 'nodejs_.*',
      'monitoring.podMonitor.metricRelabelings[0].sourceLabels[0]': '__name__',
      'monitoring.podMonitor.metricRelabelings[0].action': 'drop',
      'monitoring.additionalLabels.release': 'kps',
    });
    expect(kinds(ms)).not.toContain('ServiceMonitor');
    const pm = one(ms, 'PodMonitor');
    expect(pm.metadata.labels?.release).toBe('kps');
    expect(get(pm, 'spec.jobLabel')).toBe('retrospective.dev/job');
    expect(get(pm, 'spec.selector.matchLabels')).toEqual({
      'app.kubernetes.io/name': 'retrospective',
      'app.kubernetes.io/instance': 'rel',
    });
    expect(get(pm, 'spec.podMetricsEndpoints')).toEqual([
      {
        port: 'metrics',
        path: '/metrics',
        interval: '15s',
        scrapeTimeout: '5s',
        relabelings: [{ targetLabel: 'cluster', replacement: 'eu-1' }],
        metricRelabelings: [{ sourceLabels: ['__name__'], regex: 'nodejs_.*', action: 'drop' }],
      },
    ]);
    // The job label the alerts select on, on exactly the pods that serve metrics.
    const jobs = ms
      .filter((m) => m.kind === 'Deployment')
      .map((d) => get(d, 'spec.template.metadata.labels') as Record<string, string>)
      .map((labels) => labels['retrospective.dev/job'])
      .sort();
    expect(jobs).toEqual(['retrospective-api-server', 'retrospective-controller']);
    expect(
      (get(one(ms, 'Pod'), 'metadata.labels') as Record<string, string>)['retrospective.dev/job'],
    ).toBeUndefined();
  });

  it('refuses a PodMonitor beside the ServiceMonitor, saying which to turn off', async () => {
    const both = await renderRaw({ ...monitoring, 'monitoring.podMonitor.enabled': 'true' });
    expect(both.stderr).toMatch(
      /monitoring.podMonitor.enabled and monitoring.serviceMonitor.enabled are both true.*set monitoring.serviceMonitor.enabled=false/,
    );
  });
});

describe('securityContext of every pod and container', () => {
  const restrictedPod = {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: 'RuntimeDefault' },
  };
  const restrictedContainer = {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  /** [value prefix, pod spec, container] of the api-server, the controller and the helm test pod. */
  const pods = (ms: Awaited<ReturnType<typeof render>>) =>
    (
      [
        ['apiServer', one(ms, 'Deployment', 'rel-retrospective-api-server'), 'spec.template.spec'],
        ['controller', one(ms, 'Deployment', 'rel-retrospective-controller'), 'spec.template.spec'],
        ['tests', one(ms, 'Pod'), 'spec'],
      ] as const
    ).map(([name, m, path]) => ({
      name,
      pod: get(m, `${path}.securityContext`),
      container: get(m, `${path}.containers.0.securityContext`),
    }));

  it('is restricted by default', async () => {
    for (const { pod, container } of pods(await render())) {
      expect(pod).toEqual(restrictedPod);
      expect(container).toEqual(restrictedContainer);
    }
  });

  it('merges overrides, and drops keys set to null (OpenShift: no fixed UID, GID or fsGroup)', async () => {
    const openshift: Record<string, string> = {};
    for (const name of ['apiServer', 'controller', 'tests']) {
      for (const key of ['runAsUser', 'runAsGroup', 'fsGroup'])
        openshift[`${name}.podSecurityContext.${key}`] = 'null';
      openshift[`${name}.containerSecurityContext.seccompProfile.type`] = 'Localhost';
      openshift[`${name}.containerSecurityContext.seccompProfile.localhostProfile`] =
        `${name}.json`;
    }
    for (const { name, pod, container } of pods(await render(openshift))) {
      expect(pod, name).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(container, name).toEqual({
        ...restrictedContainer,
        seccompProfile: { type: 'Localhost', localhostProfile: `${name}.json` },
      });
    }
    expect(
      (await renderRaw({ 'controller.podSecurityContext.runAsUser': 'nobody' })).stderr,
    ).toMatch(/at '\/controller\/podSecurityContext\/runAsUser'/);
  });
});

describe('topology spread', () => {
  const spread = async (values: Record<string, string>, component: string) =>
    get(
      one(await render(values), 'Deployment', `rel-retrospective-${component}`),
      'spec.template.spec.topologySpreadConstraints',
    );
  const soft = (component: string) => ({
    maxSkew: 1,
    topologyKey: 'kubernetes.io/hostname',
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: {
      matchLabels: {
        'app.kubernetes.io/name': 'retrospective',
        'app.kubernetes.io/instance': 'rel',
        'app.kubernetes.io/component': component,
      },
    },
    matchLabelKeys: ['pod-template-hash'],
  });

  it('spreads both components softly over nodes by default, and not a single replica', async () => {
    expect(await spread({}, 'api-server')).toEqual([soft('api-server')]);
    expect(await spread({}, 'controller')).toEqual([soft('controller')]);
    expect(await spread({ 'apiServer.replicaCount': '1' }, 'api-server')).toBeUndefined();
    expect(await spread({ 'controller.replicaCount': '1' }, 'controller')).toBeUndefined();
  });

  it('topologySpread: its key, skew and hardness are values, and it can be turned off', async () => {
    for (const [prefix, component] of [
      ['apiServer', 'api-server'],
      ['controller', 'controller'],
    ] as const) {
      expect(
        await spread(
          {
            [`${prefix}.topologySpread.topologyKey`]: 'topology.kubernetes.io/zone',
            [`${prefix}.topologySpread.maxSkew`]: '2',
            [`${prefix}.topologySpread.whenUnsatisfiable`]: 'DoNotSchedule',
          },
          component,
        ),
      ).toEqual([
        {
          ...soft(component),
          maxSkew: 2,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'DoNotSchedule',
        },
      ]);
      expect(
        await spread({ [`${prefix}.topologySpread.enabled`]: 'false' }, component),
      ).toBeUndefined();
      const own = {
        [`${prefix}.topologySpreadConstraints[0].maxSkew`]: '1',
        [`${prefix}.topologySpreadConstraints[0].topologyKey`]: 'topology.kubernetes.io/zone',
        [`${prefix}.topologySpreadConstraints[0].whenUnsatisfiable`]: 'DoNotSchedule',
      };
      const zone = {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'DoNotSchedule',
      };
      expect(await spread(own, component)).toEqual([soft(component), zone]);
      expect(
        await spread({ ...own, [`${prefix}.topologySpread.enabled`]: 'false' }, component),
      ).toEqual([zone]);
      // One of the user's on the default's key and policy replaces it (the API server refuses
      // two with the same topologyKey and whenUnsatisfiable).
      const hostname = {
        maxSkew: 2,
        topologyKey: 'kubernetes.io/hostname',
        whenUnsatisfiable: 'ScheduleAnyway',
      };
      expect(
        await spread(
          {
            [`${prefix}.topologySpreadConstraints[0].maxSkew`]: '2',
            [`${prefix}.topologySpreadConstraints[0].topologyKey`]: 'kubernetes.io/hostname',
            [`${prefix}.topologySpreadConstraints[0].whenUnsatisfiable`]: 'ScheduleAnyway',
          },
          component,
        ),
      ).toEqual([hostname]);
    }
    expect(
      (await renderRaw({ 'apiServer.topologySpread.whenUnsatisfiable': 'Maybe' })).stderr,
    ).toMatch(/at '\/apiServer\/topologySpread\/whenUnsatisfiable'/);
  });
});

describe('HTTPRoute timeouts', () => {
  const gateway = { 'httpRoute.enabled': 'true', 'httpRoute.parentRefs[0].name': 'gw' };
  const rules = async (values: Record<string, string>) =>
    get(one(await render({ ...gateway, ...values }), 'HTTPRoute'), 'spec.rules') as {
      matches: { path: { value: string } }[];
      timeouts?: { request: string; backendRequest: string };
    }[];

  it('outlast the longest wait in line by 30 s (a Lock may allow 3600 s), and never cut a WebSocket', async () => {
    const [api, ws] = await rules({});
    expect(api!.matches.map((m) => m.path.value)).not.toContain('/ws');
    expect(api!.timeouts).toEqual({ request: '330s', backendRequest: '330s' });
    expect(ws!.matches.map((m) => m.path.value)).toEqual(['/ws']);
    expect(ws!.timeouts).toEqual({ request: '0s', backendRequest: '0s' });
    expect((await rules({ 'apiServer.waiting.maxSeconds': '60' }))[0]!.timeouts).toEqual({
      request: '90s',
      backendRequest: '90s',
    });
    expect((await rules({ lockSource: 'resources' }))[0]!.timeouts).toEqual({
      request: '3630s',
      backendRequest: '3630s',
    });
  });

  it('timeouts.request, backendRequest and websocket override them', async () => {
    const [api, ws] = await rules({
      'httpRoute.timeouts.request': '10m',
      'httpRoute.timeouts.backendRequest': '5m',
      'httpRoute.timeouts.websocket': '2h',
    });
    expect(api!.timeouts).toEqual({ request: '10m', backendRequest: '5m' });
    expect(ws!.timeouts).toEqual({ request: '2h', backendRequest: '2h' });
    const [requestOnly, gatewayDefault] = await rules({
      'httpRoute.timeouts.request': '0s',
      'httpRoute.timeouts.websocket': '',
    });
    expect(requestOnly!.timeouts).toEqual({ request: '0s', backendRequest: '0s' });
    expect(gatewayDefault!.timeouts).toBeUndefined();
    // For a Gateway without the Extended timeouts feature: none at all.
    const bare = await rules({ 'httpRoute.timeouts.enabled': 'false' });
    expect(bare.map((r) => r.timeouts)).toEqual([undefined, undefined]);
    expect((await renderRaw({ 'httpRoute.timeouts.request': '5 minutes' })).stderr).toMatch(
      /at '\/httpRoute\/timeouts\/request'/,
    );
  });
});

describe('Ingress annotations', () => {
  const annotations = async (values: Record<string, string>) =>
    one(await render({ 'ingress.enabled': 'true', ...values }), 'Ingress').metadata.annotations;

  it("carry ingress-nginx's timeouts only with className nginx, from websocketTimeoutSeconds", async () => {
    expect(await annotations({})).toBeUndefined();
    expect(await annotations({ 'ingress.className': 'traefik' })).toBeUndefined();
    expect(
      await annotations({ 'ingress.className': 'nginx', 'ingress.websocketTimeoutSeconds': '900' }),
    ).toEqual({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '900',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '900',
    });
  });

  it('ingress.annotations are added, and win over the chart’s', async () => {
    const { stdout } = await helm([
      'template',
      'rel',
      chartPath,
      '--set',
      'ingress.enabled=true,ingress.className=nginx',
      '--set-string',
      'ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-send-timeout=7200',
      '--set-string',
      'ingress.annotations.example\\.com/team=platform',
    ]);
    const ingress = parseAllDocuments(stdout)
      .map((d) => d.toJSON() as Manifest)
      .find((m) => m.kind === 'Ingress');
    expect(ingress?.metadata.annotations).toEqual({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '7200',
      'example.com/team': 'platform',
    });
  });
});
