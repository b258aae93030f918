import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, waitFor } from '../../hack/cluster/process.ts';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { alertmanagerConfig } from '../support/alertmanager.ts';
import { chartPath, one, render } from '../support/helm.ts';
import { cluster, createNamespace, repoRoot } from '../support/kube.ts';
import {
  startApiServer,
  startBinary,
  startController,
  type Service,
} from '../support/processes.ts';

/**
 * A real Prometheus scrapes two api-servers and a controller with the chart's rules loaded, and a
 * real Alertmanager, configured as the chart's AlertmanagerConfig describes, notifies a webhook
 * here. Two long holds (threshold 3 s) make HeldTooLong fire, then RepeatedlyHeldTooLong, which inhibits
 * the warning. Afterwards every panel query of the chart's dashboard (the current-holders table
 * included) and every annotation query (grants, releases, firing alerts) must return data.
 */
interface Notification {
  readonly status: 'firing' | 'resolved';
  readonly alerts: { status: string; labels: Record<string, string> }[];
}

const heldTooLong = 'RetrospectiveLockHeldTooLong';
const repeatedly = 'RetrospectiveLockRepeatedlyHeldTooLong';

// About 25 s alone, more beside other files: two holds past the 3 s threshold, then Prometheus's
// evaluation interval and the alerts' `for:` before each fires, resolves and is notified.
describe('Prometheus and Alertmanager on the chart rules, with a webhook receiver', () => {
  const dir = join(inject('scratchDir'), `monitoring-${process.pid}`);
  const notifications: Notification[] = [];
  let namespace: string;
  let webhook: Server;
  let apis: Service[] = [];
  let controller: Service;
  let prometheus: Service;
  let alertmanager: Service;
  let started: number;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    namespace = await createNamespace('alerts');
    const { kubeconfig } = cluster();
    controller = await startController(kubeconfig, namespace, { HELD_TOO_LONG_SECONDS: '3' });
    apis = [
      await startApiServer(kubeconfig, namespace),
      await startApiServer(kubeconfig, namespace),
    ];

    const hookPort = await freePort();
    webhook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        notifications.push(JSON.parse(body) as Notification);
        res.end();
      });
    });
    await new Promise<void>((r) => webhook.listen(hookPort, '127.0.0.1', r));

    const amc = one(
      await render(
        {
          'monitoring.enabled': 'true',
          'monitoring.alertmanagerConfig.enabled': 'true',
          'monitoring.alertmanagerConfig.webhook.url': `http://127.0.0.1:${hookPort}/`,
          'monitoring.alertmanagerConfig.groupWait': '1s',
          'monitoring.alertmanagerConfig.groupInterval': '1s',
        },
        { namespace },
      ),
      'AlertmanagerConfig',
    );
    writeFileSync(join(dir, 'alertmanager.yml'), alertmanagerConfig(amc));
    const amPort = await freePort();
    alertmanager = await startBinary(
      'alertmanager',
      [
        `--config.file=${join(dir, 'alertmanager.yml')}`,
        `--storage.path=${join(dir, 'alertmanager')}`,
        `--web.listen-address=127.0.0.1:${amPort}`,
        '--cluster.listen-address=',
      ],
      amPort,
      '/-/ready',
    );

    // The labels the ServiceMonitor's targets get in a cluster: job (from retrospective.dev/job),
    // namespace and pod.
    const target = (service: Service, pod: string) => ({
      targets: [new URL(service.metricsUrl).host],
      labels: { namespace, pod },
    });
    const promPort = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [resolve(chartPath, 'files/prometheus-rules.yaml')],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${amPort}`] }] }] },
        scrape_configs: [
          {
            job_name: 'retrospective-api-server',
            static_configs: apis.map((api, i) => target(api, `api-server-${i}`)),
          },
          {
            job_name: 'retrospective-controller',
            static_configs: [target(controller, 'controller-0')],
          },
        ],
      }),
    );
    prometheus = await startBinary(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'prometheus')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      promPort,
      '/-/ready',
    );
    await waitFor(
      'Prometheus to scrape all three targets',
      async () => (await query('up')).map((s) => s.value[1]).join() === '1,1,1',
      20_000,
    );
    started = Date.now();
  }, 120_000);

  afterAll(async () => {
    // Whatever beforeAll got to start, it stops.
    const started = [prometheus, alertmanager, ...apis, controller] as (Service | undefined)[];
    for (const service of started) await service?.stop();
    (webhook as Server | undefined)?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  interface Sample {
    metric: Record<string, string>;
    value: [number, string];
  }
  const api = async (path: string) => {
    const res = await fetch(`${prometheus.url}${path}`);
    const body = (await res.json()) as {
      status: string;
      data: { result: unknown };
      error?: string;
    };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error}`);
    return body.data.result;
  };
  const query = async (promql: string) =>
    (await api(`/api/v1/query?query=${encodeURIComponent(promql)}`)) as Sample[];
  const lockCall = (i: number, verb: string, user: string) =>
    fetch(`${apis[i % 2]!.url}/retrospective/${verb}`, {
      method: verb === 'avail' ? 'GET' : 'POST',
      headers: { Username: user },
    });
  /** Notifications the webhook got for `alertname` with `status`, for holds by `holder`. */
  const notified = (alertname: string, status: string, holder?: string) =>
    notifications.filter((n) =>
      n.alerts.some(
        (a) =>
          a.labels.alertname === alertname &&
          a.status === status &&
          (holder === undefined || a.labels.holder === holder),
      ),
    ).length;
  const amAlerts = async () =>
    (await (await fetch(`${alertmanager.url}/api/v2/alerts`)).json()) as {
      labels: Record<string, string>;
      status: { state: string; inhibitedBy: string[] };
    }[];

  it(
    'fires HeldTooLong on a long hold, then RepeatedlyHeldTooLong on the second, which inhibits the first; both resolve',
    { timeout: 120_000 },
    async () => {
      // Some traffic for the dashboard: WebSocket clients, a race between replicas, a release.
      const sockets = await Promise.all(apis.map((a) => openSocket(a.url)));
      const racers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => lockCall(i, 'avail', `racer-${i}`)),
      );
      // The one granted, from the answers: a replica's `check` may not have seen the grant yet.
      const winners = racers.flatMap((res, i) => (res.status === 200 ? [`racer-${i}`] : []));
      expect(winners).toHaveLength(1);
      const winner = winners[0]!;
      // Someone waiting in line for it gets it at the release: the wait and hand-over panels.
      const waiting = fetch(`${apis[1]!.url}/retrospective/avail?wait=30`, {
        method: 'POST',
        headers: { Username: 'waiter' },
      });
      await expect
        .poll(
          async () =>
            (
              (await (
                await fetch(`${apis[0]!.url}/retrospective/check`, {
                  headers: { Accept: 'application/json' },
                })
              ).json()) as { waiting: unknown[] }
            ).waiting.length,
        )
        .toBe(1);
      expect((await lockCall(0, 'release', winner)).status).toBe(200);
      expect((await waiting).status).toBe(200);
      expect((await lockCall(1, 'release', 'waiter')).status).toBe(200);

      // First long hold: HeldTooLong, not RepeatedlyHeldTooLong.
      expect((await lockCall(0, 'avail', 'ana')).status).toBe(200);
      await expect.poll(() => notified(heldTooLong, 'firing', 'ana'), { timeout: 30_000 }).toBe(1);
      expect(notified(repeatedly, 'firing')).toBe(0);
      expect((await lockCall(1, 'release', 'ana')).status).toBe(200);
      await expect
        .poll(() => notified(heldTooLong, 'resolved', 'ana'), { timeout: 30_000 })
        .toBeGreaterThan(0);

      // Second long hold: RepeatedlyHeldTooLong fires and inhibits HeldTooLong for the same lock.
      expect((await lockCall(1, 'avail', 'bob')).status).toBe(200);
      await expect.poll(() => notified(repeatedly, 'firing', 'bob'), { timeout: 30_000 }).toBe(1);
      await expect
        .poll(
          async () => {
            const alerts = await amAlerts();
            const warning = alerts.find(
              (a) => a.labels.alertname === heldTooLong && a.labels.holder === 'bob',
            );
            const repeated = alerts.find((a) => a.labels.alertname === repeatedly);
            return {
              warning: warning?.status.state,
              inhibited: warning?.status.inhibitedBy.length,
              repeated: repeated?.status.state,
            };
          },
          { timeout: 10_000 },
        )
        .toEqual({ warning: 'suppressed', inhibited: 1, repeated: 'active' });
      expect((await lockCall(0, 'release', 'bob')).status).toBe(200);
      await expect
        .poll(() => notified(repeatedly, 'resolved', 'bob'), { timeout: 30_000 })
        .toBeGreaterThan(0);
      for (const socket of sockets) socket.close();
      console.info(`webhook notifications: ${notifications.length}`);
    },
  );

  it(
    'returns data for every panel and annotation query of the dashboard',
    { timeout: 60_000 },
    async () => {
      const dashboard = JSON.parse(
        readFileSync(
          resolve(repoRoot, 'charts/retrospective/files/dashboards/retrospective.json'),
          'utf8',
        ),
      ) as {
        panels: { title: string; targets?: { expr: string; legendFormat?: string }[] }[];
        annotations: { list: { name: string; target: { expr: string; legendFormat?: string } }[] };
      };
      const end = Date.now() / 1000;
      const start = started / 1000 - 5;
      const empty: string[] = [];
      let queries = 0;
      const annotations = dashboard.annotations.list.map((a) => ({
        title: `annotation ${a.name}`,
        targets: [a.target],
      }));
      for (const panel of [...dashboard.panels, ...annotations]) {
        for (const target of panel.targets ?? []) {
          const expr = target.expr
            .replaceAll('$namespace', namespace)
            .replaceAll('$lock', '.+')
            .replaceAll('$__rate_interval', '10s')
            .replaceAll('$__range', `${Math.ceil(end - start)}s`);
          const series = (await api(
            `/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=1`,
          )) as { values: [number, string][] }[];
          queries++;
          const finite = series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))));
          if (!finite) empty.push(`${panel.title} / ${target.legendFormat ?? ''}: ${expr}`);
        }
      }
      expect(queries).toBeGreaterThanOrEqual(30);
      expect(annotations.map((a) => a.title)).toEqual([
        'annotation Grants',
        'annotation Releases',
        'annotation Firing alerts',
      ]);
      expect(empty).toEqual([]);
    },
  );
});
