import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kind, namespace, promQuery, viaIngress } from '../support/kind.ts';
import { repoRoot } from '../support/kube.ts';

interface Notification {
  readonly status: string;
  readonly alerts: { status: string; labels: Record<string, string> }[];
}

const heldTooLong = 'RetrospectiveLockHeldTooLong';
const repeatedly = 'RetrospectiveLockRepeatedlyHeldTooLong';
const call = (verb: string, user: string) =>
  fetch(`${kind().url}/retrospective/${verb}`, {
    method: verb === 'avail' ? 'GET' : 'POST',
    headers: { Username: user },
  });
/** Notifications the in-cluster webhook recorder got for `alertname` with `status` and holder. */
const notified = async (alertname: string, status: string, holder: string) =>
  (await viaIngress<Notification[]>('alerts.localhost', '/')).filter((n) =>
    n.alerts.some(
      (a) => a.labels.alertname === alertname && a.status === status && a.labels.holder === holder,
    ),
  ).length;
/**
 * The holders of this run: the webhook recorder and Prometheus keep what earlier runs on the same
 * cluster saw, so names of their own keep those from answering this run's questions.
 */
const run = Date.now().toString(36);
const [parity, first, second] = ['alert-parity', 'alert-first', 'alert-second'].map(
  (name) => `${name}-${run}`,
) as [string, string, string];
/** Long holds Prometheus counted in the alert's 24 h window. */
const longHolds = async () =>
  Number(
    (
      await promQuery(
        `sum(max_over_time(retrospective_lock_long_holds_total{namespace="${namespace}"}[24h]) - min_over_time(retrospective_lock_long_holds_total{namespace="${namespace}"}[24h]))`,
      )
    )[0]?.value[1] ?? 0,
  );

describe('Prometheus, run by the prometheus-operator from the chart ServiceMonitor and PrometheusRule', () => {
  it('scrapes every api-server and controller pod', { timeout: 120_000 }, async () => {
    await expect
      .poll(
        async () =>
          (await promQuery(`up{namespace="${namespace}"}`))
            .map((s) => `${s.metric.job}=${s.value[1]}`)
            .sort(),
        {
          timeout: 90_000,
          interval: 2000,
        },
      )
      .toEqual([
        'retrospective-api-server=1',
        'retrospective-api-server=1',
        'retrospective-controller=1',
        'retrospective-controller=1',
      ]);
  });

  it('has loaded the chart rules, with the overrides of its values (hack/kind/values.yaml)', async () => {
    const loaded = await viaIngress<{
      data: {
        groups: {
          file: string;
          rules: {
            name: string;
            labels: Record<string, string>;
            annotations: Record<string, string>;
          }[];
        }[];
      };
    }>('prometheus.localhost', '/api/v1/rules');
    // The chart's PrometheusRule only (the operator names the file after it).
    const rules = loaded.data.groups
      .filter((g) => g.file.includes(`${namespace}-retrospective`))
      .flatMap((g) => g.rules);
    const byName = new Map(rules.map((r) => [r.name, r]));
    expect([...byName.keys()]).toEqual(
      expect.arrayContaining([
        heldTooLong,
        repeatedly,
        'RetrospectiveAPIDown',
        'RetrospectiveNoControllerLeader',
      ]),
    );
    // Left out, raised, labelled, linked.
    expect(byName.has('RetrospectiveLockWatchDisconnected')).toBe(false);
    expect(byName.get('RetrospectiveLockFailureRatioHigh')?.labels.severity).toBe('critical');
    expect(byName.get(heldTooLong)?.labels.severity).toBe('warning');
    for (const rule of rules) expect(rule.labels.team, rule.name).toBe('platform');
    expect(byName.get(heldTooLong)?.annotations.dashboard_url).toMatch(
      /^http:\/\/grafana\.localhost:9080\/d\/[\w-]+\?var-namespace=\{\{ \$labels\.namespace \}\}/,
    );
  });

  it(
    'fires HeldTooLong, then RepeatedlyHeldTooLong, through Alertmanager to the webhook, and resolves both after release',
    { timeout: 300_000 },
    async () => {
      const longHold = async (user: string, until: () => Promise<boolean>) => {
        expect((await call('avail', user)).status).toBe(200);
        await expect.poll(until, { timeout: 90_000, interval: 1000 }).toBe(true);
        expect((await call('release', user)).status).toBe(200);
      };
      // RepeatedlyHeldTooLong fires on every second long hold in 24 h: earlier runs on this cluster
      // may have left an odd count. One more long hold makes it even again.
      const counted = await longHolds();
      if (counted % 2 === 1) {
        console.info(`${counted} long holds already counted: one more to start from an even count`);
        await longHold(parity, async () => (await longHolds()) === counted + 1);
      }

      // An odd long hold: HeldTooLong fires and resolves, RepeatedlyHeldTooLong does not fire.
      await longHold(first, async () => (await notified(heldTooLong, 'firing', first)) > 0);
      expect(await notified(repeatedly, 'firing', first)).toBe(0);
      await expect
        .poll(() => notified(heldTooLong, 'resolved', first), {
          timeout: 60_000,
          interval: 1000,
        })
        .toBeGreaterThan(0);

      // The next one: RepeatedlyHeldTooLong fires, and inhibits HeldTooLong in Alertmanager.
      expect((await call('avail', second)).status).toBe(200);
      await expect
        .poll(() => notified(repeatedly, 'firing', second), {
          timeout: 90_000,
          interval: 1000,
        })
        .toBeGreaterThan(0);
      // Firing in Prometheus itself, with the holder it is about.
      expect(
        (await promQuery(`ALERTS{alertname="${repeatedly}",alertstate="firing"}`)).map(
          (a) => a.metric.holder,
        ),
      ).toContain(second);
      const alerts = await viaIngress<
        { labels: Record<string, string>; status: { state: string; inhibitedBy: string[] } }[]
      >('alertmanager.localhost', '/api/v2/alerts');
      const warning = alerts.find(
        (a) => a.labels.alertname === heldTooLong && a.labels.holder === second,
      );
      expect(warning?.status).toMatchObject({ state: 'suppressed' });
      expect(warning?.status.inhibitedBy.length).toBe(1);
      expect((await call('release', second)).status).toBe(200);
      await expect
        .poll(() => notified(repeatedly, 'resolved', second), {
          timeout: 60_000,
          interval: 1000,
        })
        .toBeGreaterThan(0);
    },
  );

  it('answers every annotation query of the dashboard with data (grants, releases, firing alerts)', async () => {
    const dashboard = JSON.parse(
      readFileSync(
        resolve(repoRoot, 'charts/retrospective/files/dashboards/retrospective.json'),
        'utf8',
      ),
    ) as { annotations: { list: { name: string; target?: { expr: string } }[] } };
    const queries = dashboard.annotations.list.flatMap((a) =>
      a.target ? [{ name: a.name, expr: a.target.expr }] : [],
    );
    expect(queries.map((q) => q.name)).toEqual(['Grants', 'Releases', 'Firing alerts']);
    // The last 15 minutes: the holds and alerts of the test before this one are in it. A 5 s step
    // (the scrape interval here): an alert that fired for a few seconds falls between 15 s steps.
    const end = Math.floor(Date.now() / 1000);
    const start = end - 900;
    for (const { name, expr } of queries) {
      const query = expr
        .replaceAll('$namespace', namespace)
        .replaceAll('$lock', '.+')
        .replaceAll('$__rate_interval', '30s')
        .replaceAll('$__interval', '15s');
      const body = await viaIngress<{ data: { result: { values: [number, string][] }[] } }>(
        'prometheus.localhost',
        `/api/v1/query_range?query=${encodeURIComponent(query)}&start=${start}&end=${end}&step=5`,
      );
      const points = body.data.result.flatMap((s) => s.values);
      expect(points.length, `${name}: ${query}`).toBeGreaterThan(0);
    }
  });
});
