import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { chartPath, get, kinds, one, render, renderRaw, type Manifest } from '../support/helm.ts';

const monitoring = { 'monitoring.enabled': 'true' };
type Container = { name: string; args: string[]; env: { name: string; value?: string }[] } & Record<
  string,
  unknown
>;
const container = (m: Manifest) => (get(m, 'spec.template.spec.containers') as Container[])[0]!;
const env = (m: Manifest, name: string) => container(m).env.find((e) => e.name === name)?.value;
const deployments = (ms: Manifest[]) => ms.filter((m) => m.kind === 'Deployment');

describe('the chart with its defaults', () => {
  it('renders the two Deployments, their ServiceAccounts, Roles, Services and PDBs, the helm test pod, and nothing optional', async () => {
    const ms = await render();
    expect(kinds(ms)).toEqual(
      [
        'Deployment',
        'Deployment',
        'Pod',
        'PodDisruptionBudget',
        'PodDisruptionBudget',
        'Role',
        'Role',
        'Role',
        'Role',
        'Role',
        'RoleBinding',
        'RoleBinding',
        'Service',
        'Service',
        'ServiceAccount',
        'ServiceAccount',
      ].sort(),
    );
    for (const m of ms) {
      expect(m.metadata.namespace).toBe('ops');
      expect(m.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': 'retrospective',
        'app.kubernetes.io/instance': 'rel',
        'app.kubernetes.io/managed-by': 'Helm',
      });
    }
  });

  it('has a helm test pod that checks the API and metrics ports through the Service, and none when tests are off', async () => {
    const pod = one(await render(), 'Pod', 'rel-retrospective-test-api');
    expect(get(pod, 'metadata.annotations')).toMatchObject({ 'helm.sh/hook': 'test' });
    expect((get(pod, 'spec.containers') as { image: string }[])[0]?.image).toBe(
      'retrospective:0.1.0',
    );
    expect((get(pod, 'spec.containers') as { env: unknown }[])[0]?.env).toEqual([
      { name: 'API', value: 'http://rel-retrospective-api-server:80' },
      { name: 'METRICS', value: 'http://rel-retrospective-api-server:8080' },
    ]);
    expect(kinds(await render({ 'tests.enabled': 'false' }))).not.toContain('Pod');
  });

  it('runs both processes from one image, as a non-root user with a read-only root filesystem', async () => {
    const ms = await render();
    const [api, controller] = [
      one(ms, 'Deployment', 'rel-retrospective-api-server'),
      one(ms, 'Deployment', 'rel-retrospective-controller'),
    ];
    expect(container(api).args).toEqual(['api-server/dist/main.js']);
    expect(container(controller).args).toEqual(['controller/dist/main.js']);
    for (const d of [api, controller]) {
      expect(container(d).image).toBe('retrospective:0.1.0');
      expect(get(d, 'spec.replicas')).toBe(2);
      expect(get(d, 'spec.template.spec.securityContext')).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 65532,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(container(d).securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(env(d, 'STORE')).toBe('kubernetes');
      expect(env(d, 'LOCKS')).toBe('retrospective');
      expect(env(d, 'WAIT_LINE_FORM')).toBe('short');
    }
  });

  it('writes the line in the form waitLineForm names, in both processes, and refuses another', async () => {
    const ds = deployments(await render({ waitLineForm: 'objects' }));
    expect(ds.map((d) => get(d, 'metadata.name'))).toEqual([
      'rel-retrospective-api-server',
      'rel-retrospective-controller',
    ]);
    for (const d of ds) expect(env(d, 'WAIT_LINE_FORM')).toBe('objects');
    expect((await renderRaw({ waitLineForm: 'arrays' })).stderr).toMatch(/waitLineForm/);
  });

  it('rolls the api-server without losing capacity, and drains within the grace period', async () => {
    const api = one(await render(), 'Deployment', 'rel-retrospective-api-server');
    expect(get(api, 'spec.strategy')).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(env(api, 'DRAIN_DELAY_SECONDS')).toBe('5');
    expect(env(api, 'SHUTDOWN_TIMEOUT_SECONDS')).toBe('20');
    expect(get(api, 'spec.template.spec.terminationGracePeriodSeconds')).toBe(30);
    expect(container(api).readinessProbe).toMatchObject({
      httpGet: { path: '/readyz', port: 'http' },
    });
    // Not restarted for being full (HTTP_MAX_CONNECTIONS applies to the API port only).
    expect(container(api).livenessProbe).toMatchObject({
      httpGet: { path: '/healthz', port: 'metrics' },
    });
    expect(container(api).ports).toEqual([
      { name: 'http', containerPort: 9090, protocol: 'TCP' },
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
    ]);
  });

  it('grants the api-server only its locks, by name, and never create', async () => {
    const role = one(await render(), 'Role', 'rel-retrospective-api-server');
    expect(role.rules).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        verbs: ['get', 'list', 'watch', 'update'],
        resourceNames: ['retrospective'],
      },
      {
        apiGroups: [''],
        resources: ['configmaps'],
        verbs: ['get', 'list', 'watch'],
        resourceNames: ['retrospective-history'],
      },
    ]);
  });

  it('ships viewer, editor and admin Roles on the lock Leases with verbs only retrospective checks', async () => {
    const ms = await render({ 'locks[0]': 'notes', 'locks[1]': 'standup' });
    const verbs = (name: string) =>
      one(ms, 'Role', `rel-retrospective-${name}`).rules as {
        verbs: string[];
        resourceNames: string[];
      }[];
    expect(verbs('viewer')).toEqual([
      expect.objectContaining({
        verbs: ['get', 'list', 'watch'],
        resourceNames: ['notes', 'standup'],
      }),
    ]);
    expect(verbs('editor')[0]?.verbs).toEqual(['get', 'list', 'watch', 'hold']);
    expect(verbs('admin')[0]?.verbs).toEqual(['get', 'list', 'watch', 'hold', 'force-release']);
    for (const name of ['viewer', 'editor', 'admin'])
      expect(verbs(name)[0]?.verbs).not.toContain('update');
    expect(
      kinds(await render({ 'rbac.userRoles': 'false' })).filter((k) => k === 'Role'),
    ).toHaveLength(2);
  });

  it('lockSource=resources: declares the locks as Lock objects with the lock settings, and moves RBAC to locks', async () => {
    const ms = await render({
      lockSource: 'resources',
      'locks[0]': 'notes',
      'lock.holdTimeoutSeconds': '60',
      'apiServer.waiting.maxWaiters': '7',
    });
    expect(kinds(await render())).not.toContain('Lock');
    expect(one(ms, 'Lock', 'notes').spec).toEqual({
      holdTimeoutSeconds: 60,
      heldTooLongSeconds: 900,
      maxContentBytes: 32768,
      waiting: { maxSeconds: 300, maxWaiters: 7, maxPerUser: 1 },
    });
    const env = get(
      one(ms, 'Deployment', 'rel-retrospective-api-server'),
      'spec.template.spec.containers.0.env',
    ) as { name: string; value?: string }[];
    expect(env).toContainEqual({ name: 'LOCK_SOURCE', value: 'resources' });
    const rules = (name: string) =>
      one(ms, 'Role', `rel-retrospective-${name}`).rules as {
        resources: string[];
        verbs: string[];
        resourceNames?: string[];
      }[];
    expect(rules('api-server')).toContainEqual(
      expect.objectContaining({ resources: ['locks'], verbs: ['get', 'list', 'watch'] }),
    );
    expect(rules('api-server').flatMap((r) => r.verbs)).not.toContain('create');
    expect(rules('controller')).toContainEqual(
      expect.objectContaining({ resources: ['locks/status'], verbs: ['update', 'patch'] }),
    );
    expect(rules('controller').flatMap((r) => r.resources)).not.toContain('secrets');
    expect(rules('editor')).toEqual([
      {
        apiGroups: ['retrospective.dev'],
        resources: ['locks'],
        verbs: ['get', 'list', 'watch', 'hold'],
      },
    ]);
  });

  it('grants TokenReview and SubjectAccessReview creation only in auth.mode=kubernetes', async () => {
    expect(kinds(await render())).not.toContain('ClusterRole');
    const ms = await render({ 'auth.mode': 'kubernetes', 'auth.cacheSeconds': '3' });
    expect(one(ms, 'ClusterRole').rules).toEqual([
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      {
        apiGroups: ['authorization.k8s.io'],
        resources: ['subjectaccessreviews'],
        verbs: ['create'],
      },
    ]);
    expect(get(one(ms, 'ClusterRoleBinding'), 'subjects')).toEqual([
      { kind: 'ServiceAccount', name: 'rel-retrospective-api-server', namespace: 'ops' },
    ]);
    const api = one(ms, 'Deployment', 'rel-retrospective-api-server');
    expect(env(api, 'AUTH_MODE')).toBe('kubernetes');
    expect(env(api, 'AUTH_CACHE_SECONDS')).toBe('3');
  });

  it('grants the controller its locks, its leader Lease and history by name, and only create and Events beyond', async () => {
    const role = one(
      await render({ 'locks[0]': 'notes', 'locks[1]': 'standup' }),
      'Role',
      'rel-retrospective-controller',
    );
    expect(role.rules).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        verbs: ['get', 'list', 'watch', 'update'],
        resourceNames: ['notes', 'standup', 'rel-retrospective-controller-leader'],
      },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      {
        apiGroups: [''],
        resources: ['configmaps'],
        verbs: ['get', 'update'],
        resourceNames: ['notes-history', 'standup-history'],
      },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
  });
});

describe('chart options', () => {
  it('Ingress: routes the API, /ws and the view to the http port, never /metrics, with class, hosts and TLS', async () => {
    const ms = await render({
      'ingress.enabled': 'true',
      'ingress.className': 'traefik',
      'ingress.hosts[0]': 'retro.example.com',
      'ingress.tls[0].secretName': 'retro-tls',
      'ingress.tls[0].hosts[0]': 'retro.example.com',
    });
    const ingress = one(ms, 'Ingress');
    expect(get(ingress, 'spec.ingressClassName')).toBe('traefik');
    expect(get(ingress, 'spec.tls')).toEqual([
      { secretName: 'retro-tls', hosts: ['retro.example.com'] },
    ]);
    expect(get(ingress, 'spec.rules.0.host')).toBe('retro.example.com');
    const paths = get(ingress, 'spec.rules.0.http.paths') as {
      path: string;
      pathType: string;
      backend: { service: { name: string; port: { name: string } } };
    }[];
    expect(paths.map((p) => `${p.pathType} ${p.path}`)).toEqual([
      'Prefix /retrospective/',
      'Prefix /locks/',
      'Exact /locks',
      'Exact /ws',
      'Exact /',
      'Exact /view.js',
      'Exact /view.css',
      'Exact /openapi.json',
      'Exact /ping',
      'Exact /api/me',
    ]);
    for (const p of paths)
      expect(p.backend.service).toEqual({
        name: 'rel-retrospective-api-server',
        port: { name: 'http' },
      });
    expect(paths.some((p) => p.path.includes('metrics'))).toBe(false);
    // No annotation of another controller's.
    expect(ingress.metadata.annotations).toBeUndefined();
    // Each host is an allowed WebSocket origin, and a host its own pages may use it from.
    const api = one(ms, 'Deployment', 'rel-retrospective-api-server');
    expect(env(api, 'ALLOWED_ORIGINS')).toBe('https://retro.example.com,http://retro.example.com');
    expect(env(api, 'ALLOWED_HOSTS')).toBe('retro.example.com');
  });

  it('Ingress off (the default) and an Ingress with no host serves any host', async () => {
    expect(kinds(await render())).not.toContain('Ingress');
    const ingress = one(
      await render({ 'ingress.enabled': 'true', 'ingress.hosts': 'null' }),
      'Ingress',
    );
    expect(get(ingress, 'spec.rules.0.host')).toBeUndefined();
  });

  it('HTTPRoute: the same paths on the Gateways named, and it refuses to be combined with the Ingress', async () => {
    const route = one(
      await render({
        'httpRoute.enabled': 'true',
        'httpRoute.parentRefs[0].name': 'gw',
        'httpRoute.parentRefs[0].namespace': 'infra',
        'httpRoute.hostnames[0]': 'retro.example.com',
      }),
      'HTTPRoute',
    );
    expect(get(route, 'spec.parentRefs')).toEqual([{ name: 'gw', namespace: 'infra' }]);
    expect(get(route, 'spec.hostnames')).toEqual(['retro.example.com']);
    const matches = get(route, 'spec.rules.0.matches') as {
      path: { type: string; value: string };
    }[];
    expect(matches.map((m) => `${m.path.type} ${m.path.value}`)).toContain(
      'PathPrefix /retrospective/',
    );
    expect(matches.map((m) => m.path.value)).not.toContain('/metrics');
    expect(get(route, 'spec.rules.0.backendRefs')).toEqual([
      { name: 'rel-retrospective-api-server', port: 80 },
    ]);
    const both = await renderRaw({
      'ingress.enabled': 'true',
      'httpRoute.enabled': 'true',
      'httpRoute.parentRefs[0].name': 'gw',
    });
    expect(both.stderr).toMatch(/ingress.enabled and httpRoute.enabled are both true/);
    const noGateway = await renderRaw({ 'httpRoute.enabled': 'true' });
    expect(noGateway.stderr).toMatch(/httpRoute.parentRefs must name at least one Gateway/);
  });

  it('monitoring: a ServiceMonitor on both metrics ports, the PrometheusRule and the dashboard ConfigMap', async () => {
    const ms = await render(monitoring);
    const sm = one(ms, 'ServiceMonitor');
    expect(get(sm, 'spec.jobLabel')).toBe('retrospective.dev/job');
    expect(get(sm, 'spec.endpoints')).toEqual([
      { port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' },
    ]);
    const services = ms.filter((m) => m.kind === 'Service');
    expect(services.map((s) => s.metadata.labels?.['retrospective.dev/job']).sort()).toEqual([
      'retrospective-api-server',
      'retrospective-controller',
    ]);
    for (const s of services)
      expect((get(s, 'spec.ports') as { name: string }[]).map((p) => p.name)).toContain('metrics');
    const rule = one(ms, 'PrometheusRule');
    const rendered = parse(
      readFileSync(resolve(chartPath, 'files/prometheus-rules.yaml'), 'utf8'),
    ) as unknown;
    expect(rule.spec).toEqual(rendered);
    const alerts = (get(rule, 'spec.groups') as { rules: { alert: string }[] }[]).flatMap((g) =>
      g.rules.map((r) => r.alert),
    );
    expect(alerts).toContain('RetrospectiveLockRepeatedlyHeldTooLong');
    const dashboard = one(ms, 'ConfigMap', 'rel-retrospective-dashboard');
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    expect(
      JSON.parse((dashboard.data as Record<string, string>)['retrospective.json']!),
    ).toMatchObject({ uid: 'retrospective-lock' });
  });

  it("monitoring: extra labels for kube-prometheus-stack's release selection, and each part can be turned off", async () => {
    const ms = await render({ ...monitoring, 'monitoring.additionalLabels.release': 'kps' });
    for (const kind of ['ServiceMonitor', 'PrometheusRule'])
      expect(one(ms, kind).metadata.labels?.release).toBe('kps');
    const none = await render({
      ...monitoring,
      'monitoring.serviceMonitor.enabled': 'false',
      'monitoring.prometheusRule.enabled': 'false',
      'monitoring.dashboard.enabled': 'false',
    });
    expect(kinds(none)).not.toContain('ServiceMonitor');
    expect(kinds(none)).not.toContain('PrometheusRule');
    expect(none.filter((m) => m.kind === 'ConfigMap')).toEqual([]);
    expect(kinds(await render())).not.toContain('ServiceMonitor');
  });

  it('AlertmanagerConfig: routes Retrospective alerts to the webhook, and a repeated long hold inhibits the single one per lock', async () => {
    const amc = one(
      await render({
        ...monitoring,
        'monitoring.alertmanagerConfig.enabled': 'true',
        'monitoring.alertmanagerConfig.webhook.url': 'http://hook.example/alerts',
        'monitoring.additionalLabels.alertmanagerConfig': 'retro',
      }),
      'AlertmanagerConfig',
    );
    expect(amc.metadata.labels?.alertmanagerConfig).toBe('retro');
    expect(get(amc, 'spec.route')).toMatchObject({
      receiver: 'retrospective',
      matchers: [{ name: 'alertname', matchType: '=~', value: 'Retrospective.*' }],
    });
    expect(get(amc, 'spec.receivers')).toEqual([
      {
        name: 'retrospective',
        webhookConfigs: [{ url: 'http://hook.example/alerts', sendResolved: true }],
      },
    ]);
    expect(get(amc, 'spec.inhibitRules')).toEqual([
      {
        sourceMatch: [{ name: 'alertname', value: 'RetrospectiveLockRepeatedlyHeldTooLong' }],
        targetMatch: [{ name: 'alertname', value: 'RetrospectiveLockHeldTooLong' }],
        equal: ['namespace', 'lock'],
      },
    ]);
    const secret = one(
      await render({
        ...monitoring,
        'monitoring.alertmanagerConfig.enabled': 'true',
        'monitoring.alertmanagerConfig.webhook.urlSecret.name': 'hook',
      }),
      'AlertmanagerConfig',
    );
    expect(get(secret, 'spec.receivers.0.webhookConfigs.0')).toEqual({
      sendResolved: true,
      urlSecret: { name: 'hook', key: 'url' },
    });
    const missing = await renderRaw({
      ...monitoring,
      'monitoring.alertmanagerConfig.enabled': 'true',
    });
    expect(missing.stderr).toMatch(
      /needs monitoring.alertmanagerConfig.webhook.url or .webhook.urlSecret/,
    );
  });

  it('NetworkPolicy: the API only from apiFrom, metrics only from metricsFrom', async () => {
    const ms = await render({
      'networkPolicy.enabled': 'true',
      'networkPolicy.apiFrom[0].namespaceSelector.matchLabels.name': 'ingress',
      'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name': 'monitoring',
    });
    const api = one(ms, 'NetworkPolicy', 'rel-retrospective-api-server');
    expect(get(api, 'spec.policyTypes')).toEqual(['Ingress']);
    expect(get(api, 'spec.ingress')).toEqual([
      {
        ports: [{ port: 'http', protocol: 'TCP' }],
        from: [{ namespaceSelector: { matchLabels: { name: 'ingress' } } }],
      },
      {
        ports: [{ port: 'metrics', protocol: 'TCP' }],
        from: [{ namespaceSelector: { matchLabels: { name: 'monitoring' } } }],
      },
      // The release's own helm test pod.
      {
        ports: [
          { port: 'http', protocol: 'TCP' },
          { port: 'metrics', protocol: 'TCP' },
        ],
        from: [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/name': 'retrospective',
                'app.kubernetes.io/instance': 'rel',
                'app.kubernetes.io/component': 'test',
              },
            },
          },
        ],
      },
    ]);
    const controller = one(ms, 'NetworkPolicy', 'rel-retrospective-controller');
    expect(get(controller, 'spec.ingress')).toEqual([
      {
        ports: [{ port: 'metrics', protocol: 'TCP' }],
        from: [{ namespaceSelector: { matchLabels: { name: 'monitoring' } } }],
      },
    ]);
    expect(kinds(await render())).not.toContain('NetworkPolicy');
  });

  it('PDB only with more than one replica, or not at all; replicas and resources as given', async () => {
    const single = await render({
      'apiServer.replicaCount': '1',
      'controller.podDisruptionBudget.enabled': 'false',
    });
    expect(single.filter((m) => m.kind === 'PodDisruptionBudget')).toEqual([]);
    const three = await render({
      'apiServer.replicaCount': '3',
      'apiServer.resources.limits.memory': '1Gi',
      'controller.resources.requests.cpu': '200m',
    });
    const api = one(three, 'Deployment', 'rel-retrospective-api-server');
    expect(get(api, 'spec.replicas')).toBe(3);
    expect(container(api).resources).toEqual({
      requests: { cpu: '50m', memory: '96Mi' },
      limits: { memory: '1Gi' },
    });
    expect(
      get(
        container(one(three, 'Deployment', 'rel-retrospective-controller')),
        'resources.requests.cpu',
      ),
    ).toBe('200m');
    expect(
      get(one(three, 'PodDisruptionBudget', 'rel-retrospective-api-server'), 'spec.minAvailable'),
    ).toBe(1);
  });

  it('image overrides: repository, tag, digest and pull secrets', async () => {
    const tagged = await render({
      'image.repository': 'registry.example/retro',
      'image.tag': '1.2.3',
      'imagePullSecrets[0].name': 'pull',
    });
    for (const d of deployments(tagged)) {
      expect(container(d).image).toBe('registry.example/retro:1.2.3');
      expect(get(d, 'spec.template.spec.imagePullSecrets')).toEqual([{ name: 'pull' }]);
    }
    const digest = `sha256:${'a'.repeat(64)}`;
    for (const d of deployments(await render({ 'image.digest': digest })))
      expect(container(d).image).toBe(`retrospective@${digest}`);
  });

  it('lock settings and leader election reach the processes, and impossible timings fail with a message', async () => {
    const ms = await render({
      'lock.holdTimeoutSeconds': '60',
      'lock.heldTooLongSeconds': '120',
      'controller.leaderElection.leaseDurationSeconds': '30',
    });
    const controller = one(ms, 'Deployment', 'rel-retrospective-controller');
    expect(env(controller, 'HOLD_TIMEOUT_SECONDS')).toBe('60');
    expect(env(controller, 'HELD_TOO_LONG_SECONDS')).toBe('120');
    expect(env(controller, 'LEADER_ELECTION_LEASE_DURATION_SECONDS')).toBe('30');
    expect(env(controller, 'LEADER_ELECTION_ID')).toBe('rel-retrospective-controller-leader');
    const bad = await renderRaw({ 'controller.leaderElection.renewDeadlineSeconds': '20' });
    expect(bad.stderr).toMatch(/leaseDurationSeconds > renewDeadlineSeconds > retryPeriodSeconds/);
    const drain = await renderRaw({ 'apiServer.shutdownTimeoutSeconds': '40' });
    expect(drain.stderr).toMatch(
      /shutdownTimeoutSeconds must be less than apiServer.terminationGracePeriodSeconds/,
    );
  });

  it('caps connections only when told, and always above the WebSocket clients', async () => {
    const api = (ms: Awaited<ReturnType<typeof render>>) =>
      one(ms, 'Deployment', 'rel-retrospective-api-server');
    // Unset: the api-server derives it from WS_MAX_CONNECTIONS.
    expect(env(api(await render({})), 'HTTP_MAX_CONNECTIONS')).toBeUndefined();
    const set = await render({
      'apiServer.maxConnections': '3000',
      'apiServer.websocket.maxConnections': '2000',
    });
    expect(env(api(set), 'HTTP_MAX_CONNECTIONS')).toBe('3000');
    expect(env(api(set), 'WS_MAX_CONNECTIONS')).toBe('2000');
    const under = await renderRaw({ 'apiServer.maxConnections': '1000' });
    expect(under.stderr).toMatch(
      /apiServer.maxConnections must be above apiServer.websocket.maxConnections/,
    );
  });

  it('the waiting line and token reviews reach the api-server, bounded so a full lock fits its Lease', async () => {
    const ms = await render({
      'apiServer.waiting.maxWaiters': '50',
      'apiServer.waiting.maxPerUser': '2',
      'auth.reviewsPerAddressPerMinute': '30',
    });
    const api = one(ms, 'Deployment', 'rel-retrospective-api-server');
    expect(env(api, 'WAIT_QUEUE_MAX')).toBe('50');
    expect(env(api, 'WAIT_QUEUE_MAX_PER_USER')).toBe('2');
    expect(env(api, 'AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE')).toBe('30');
    const tooBig = await renderRaw({
      'lock.maxContentBytes': '204800',
      'apiServer.waiting.maxWaiters': '100',
    });
    expect(tooBig.stderr).toMatch(
      /lock.maxContentBytes \+ apiServer.waiting.maxWaiters x 440 must stay under 243712 bytes \(it is 248800\)/,
    );
    const fits = await renderRaw({
      'lock.maxContentBytes': '204800',
      'apiServer.waiting.maxWaiters': '88',
    });
    expect(fits.code).toBe(0);
    expect((await renderRaw({ 'apiServer.waiting.maxPerUser': '200' })).stderr).toMatch(
      /at '\/apiServer\/waiting\/maxPerUser'/,
    );
  });
});

describe('values.schema.json', () => {
  it('refuses an unknown key, naming it', async () => {
    const { code, stderr } = await renderRaw({ 'apiServer.replicas': '3' });
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/at '\/apiServer': additional properties 'replicas' not allowed/);
  });

  it('refuses a wrong type or value, naming the key', async () => {
    expect((await renderRaw({ 'lock.historySize': 'many' })).stderr).toMatch(
      /at '\/lock\/historySize': got string, want integer/,
    );
    expect((await renderRaw({ 'locks[0]': 'Bad_Name' })).stderr).toMatch(/at '\/locks\/0'/);
    expect((await renderRaw({ 'image.pullPolicy': 'Sometimes' })).stderr).toMatch(
      /at '\/image\/pullPolicy'/,
    );
    expect((await renderRaw({ 'monitoring.serviceMonitor.interval': 'often' })).stderr).toMatch(
      /at '\/monitoring\/serviceMonitor\/interval'/,
    );
  });

  it('describes exactly the keys of values.yaml', () => {
    const values = parse(readFileSync(resolve(chartPath, 'values.yaml'), 'utf8')) as unknown;
    const schema = JSON.parse(
      readFileSync(resolve(chartPath, 'values.schema.json'), 'utf8'),
    ) as SchemaNode;
    expect(mismatches(schema, values, '')).toEqual([]);
  });
});

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  additionalProperties?: unknown;
}

/**
 * Where the strict schema and values.yaml disagree on which keys exist (helm's `global` aside). An
 * empty map in values.yaml is one whose keys are all optional (`monitoring.prometheusRule.alerts`).
 */
function mismatches(schema: SchemaNode, value: unknown, path: string): string[] {
  if (!schema.properties || schema.additionalProperties !== false) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [`${path}: not a map in values.yaml`];
  if (Object.keys(value).length === 0) return [];
  const inSchema = Object.keys(schema.properties).filter((k) => path !== '' || k !== 'global');
  const inValues = Object.keys(value);
  const at = (k: string) => (path ? `${path}.${k}` : k);
  return [
    ...inSchema
      .filter((k) => !inValues.includes(k))
      .map((k) => `${at(k)}: in the schema, not in values.yaml`),
    ...inValues
      .filter((k) => !inSchema.includes(k))
      .map((k) => `${at(k)}: in values.yaml, not in the schema`),
    ...inSchema
      .filter((k) => inValues.includes(k))
      .flatMap((k) =>
        mismatches(schema.properties![k]!, (value as Record<string, unknown>)[k], at(k)),
      ),
  ];
}
