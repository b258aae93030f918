// The retrospective dashboard: who holds each lock and for how long, hold durations, long holds,
// requests by outcome, races, WebSocket clients and broadcast delay, callers waiting in line and
// the hand-over gap, Kubernetes API calls and the controller leader. Every panel reads the
// `${datasource}`, `$namespace` and `$lock` variables (and `$cluster` with showMultiCluster);
// grants, releases and firing alerts are annotations; links lead to the management view and the
// runbooks.
local g = import '../lib/grafana.libsonnet';

{
  local config = self._config,
  local cluster =
    if config.showMultiCluster then ', %s="$cluster"' % config.clusterLabel else '',
  local sel(job, withLock=true) =
    '%s%s, namespace=~"$namespace"%s' % [job, cluster, if withLock then ', lock=~"$lock"' else ''],
  local api(withLock=true) = sel(config.apiServerSelector, withLock),
  local ctl(withLock=true) = sel(config.controllerSelector, withLock),
  local any = sel(config.anySelector, false),
  local quantile(q, metric, selector, by='') =
    'histogram_quantile(%s, sum by (le%s) (rate(%s_bucket{%s}[$__rate_interval])))' % [q, by, metric, selector],
  local counted(metric, selector) =
    'sum by (lock) (max_over_time(%s{%s}[$__range]) - min_over_time(%s{%s}[$__range]))' % [metric, selector, metric, selector],

  local panels = [
    g.row('Locks', 0, 0),
    g.table(
      'Current holders',
      'Each held lock, who holds it and for how long (from the leading controller; a free lock has no row).',
      g.tableTarget(std.stripChars(|||
        max by (namespace, lock) (retrospective_lock_held_seconds{%s})
        * on (namespace, lock) group_right ()
        max by (namespace, lock, holder) (retrospective_lock_holder_info{%s})
      ||| % [ctl(), ctl()], '\n')),
      g.pos(0, 1, 8, 7),
      unit='s',
      columns=[['namespace', 'Namespace'], ['lock', 'Lock'], ['holder', 'Holder']],
      valueHeading='Held for',
    ),
    g.stateTimeline(
      'Holder',
      'Who holds each lock over time (from the leading controller).',
      [g.target('max by (lock, holder) (retrospective_lock_holder_info{%s})' % ctl(), '{{lock}}: {{holder}}')],
      g.pos(8, 1, 16, 7),
      unit='short',
    ),
    g.timeseries(
      'Held for',
      'How long the current hold of each lock has lasted, against the held-too-long threshold.',
      [
        g.target('max by (lock) (retrospective_lock_held_seconds{%s})' % ctl(), '{{lock}}'),
        g.target('max by (lock) (retrospective_lock_held_too_long_threshold_seconds{%s})' % ctl(), '{{lock}}: held too long'),
      ],
      g.pos(0, 8, 8, 7),
      unit='s',
      min=0,
    ),
    g.timeseries(
      'Hold duration',
      'Quantiles of finished holds, observed at release.',
      [
        g.target(quantile('0.5', 'retrospective_lock_hold_duration_seconds', ctl()), 'p50'),
        g.target(quantile('0.9', 'retrospective_lock_hold_duration_seconds', ctl()), 'p90'),
        g.target(quantile('0.99', 'retrospective_lock_hold_duration_seconds', ctl()), 'p99'),
      ],
      g.pos(8, 8, 8, 7),
      unit='s',
      min=0,
    ),
    g.stat(
      'Long holds and expirations',
      'Holds that crossed the held-too-long threshold, and holds the controller expired, in the time range.',
      [
        g.target(counted('retrospective_lock_long_holds_total', ctl()), '{{lock}} long holds'),
        g.target(counted('retrospective_lock_expirations_total', ctl()), '{{lock}} expired'),
      ],
      g.pos(16, 8, 8, 7),
      unit='short',
    ),

    g.row('Requests', 15, 0),
    g.timeseries(
      'Lock requests by outcome',
      'check, avail, change and release per second, by what they answered (granted, locked = Wait, ...).',
      [g.target('sum by (action, outcome) (rate(retrospective_lock_requests_total{%s}[$__rate_interval]))' % api(), '{{action}} {{outcome}}')],
      g.pos(0, 16, 12, 8),
      unit='reqps',
      min=0,
    ),
    g.timeseries(
      'Races',
      'Commands that lost a compare-and-swap race to another replica and were then refused.',
      [g.target('sum by (lock, action) (rate(retrospective_lock_races_total{%s}[$__rate_interval]))' % api(), '{{lock}} {{action}}')],
      g.pos(12, 16, 12, 8),
      unit='reqps',
      min=0,
    ),
    g.timeseries(
      'Request latency (p99)',
      '99th percentile of HTTP request latency by route.',
      [g.target(quantile('0.99', 'retrospective_http_request_duration_seconds', api(false), ', route'), '{{route}}')],
      g.pos(0, 24, 24, 7),
      unit='s',
      min=0,
    ),

    g.row('WebSockets', 31, 0),
    g.timeseries(
      'WebSocket clients',
      'Open WebSocket connections per api-server pod.',
      [g.target('sum by (pod) (retrospective_websocket_connections{%s})' % api(false), '{{pod}}')],
      g.pos(0, 32, 6, 7),
      unit='short',
      min=0,
    ),
    g.timeseries(
      'Broadcast delay',
      'From a lock change being seen to its frames being written to every client.',
      [
        g.target(quantile('0.5', 'retrospective_broadcast_delay_seconds', api(false)), 'p50'),
        g.target(quantile('0.99', 'retrospective_broadcast_delay_seconds', api(false)), 'p99'),
      ],
      g.pos(6, 32, 6, 7),
      unit='s',
      min=0,
    ),
    g.timeseries(
      'Frames sent',
      'WebSocket frames per second, by type.',
      [g.target('sum by (type) (rate(retrospective_websocket_messages_total{%s}[$__rate_interval]))' % api(false), '{{type}}')],
      g.pos(12, 32, 6, 7),
      unit='mps',
      min=0,
    ),
    g.timeseries(
      'Clients dropped',
      'WebSocket clients the server disconnected per second, by reason.',
      [g.target('sum by (reason) (rate(retrospective_websocket_dropped_total{%s}[$__rate_interval]))' % api(false), '{{reason}}')],
      g.pos(18, 32, 6, 7),
      unit='cps',
      min=0,
    ),

    g.row('Waiting in line', 39, 0),
    g.timeseries(
      'Callers waiting',
      'Callers waiting in line for each lock (avail?wait=), as each api-server pod sees the Lease.',
      [g.target('max by (lock) (retrospective_lock_queue_length{%s})' % api(), '{{lock}}')],
      g.pos(0, 40, 8, 7),
      unit='short',
      min=0,
    ),
    g.timeseries(
      'Time waited',
      'How long callers waited in line, by outcome: granted, timeout or abandoned (the client left).',
      [g.target(quantile('0.99', 'retrospective_lock_wait_duration_seconds', api(), ', outcome'), 'p99 {{outcome}}')],
      g.pos(8, 40, 8, 7),
      unit='s',
      min=0,
    ),
    g.timeseries(
      'Hand-over gap',
      'From a release to the grant to the next caller in line: how long the lock sat free while someone waited.',
      [
        g.target(quantile('0.5', 'retrospective_lock_handover_gap_seconds', api()), 'p50'),
        g.target(quantile('0.99', 'retrospective_lock_handover_gap_seconds', api()), 'p99'),
      ],
      g.pos(16, 40, 8, 7),
      unit='s',
      min=0,
    ),

    g.row('Kubernetes', 47, 0),
    g.timeseries(
      'Kubernetes API calls',
      'Calls to the Kubernetes API per second by process, verb and status code ("error": no answer).',
      [g.target('sum by (job, verb, code) (rate(retrospective_kube_requests_total{%s}[$__rate_interval]))' % any, '{{job}} {{verb}} {{code}}')],
      g.pos(0, 48, 12, 8),
      unit='reqps',
      min=0,
    ),
    g.timeseries(
      'Kubernetes API latency (p99)',
      '99th percentile of Kubernetes API call latency by verb.',
      [g.target(quantile('0.99', 'retrospective_kube_request_duration_seconds', any, ', verb'), '{{verb}}')],
      g.pos(12, 48, 12, 8),
      unit='s',
      min=0,
    ),
    g.timeseries(
      'Lease watch connected',
      '1 while a process watches the lock Leases (its cache is current).',
      [g.target('min by (pod) (retrospective_watch_connected{%s})' % any, '{{pod}}')],
      g.pos(0, 56, 6, 7),
      unit='short',
      min=0,
    ),
    g.timeseries(
      'Lease watch restarts',
      'Restarts of the lock watch per second, by reason.',
      [g.target('sum by (reason) (rate(retrospective_watch_restarts_total{%s}[$__rate_interval]))' % any, '{{reason}}')],
      g.pos(6, 56, 6, 7),
      unit='cps',
      min=0,
    ),
    g.timeseries(
      'Controller leader',
      '1 for the controller pod that holds the leader Lease.',
      [g.target('max by (pod) (retrospective_controller_leader{%s})' % ctl(false), '{{pod}}')],
      g.pos(12, 56, 6, 7),
      unit='short',
      min=0,
    ),
    g.timeseries(
      'Reconciles',
      'Reconciles of lock Leases per second by result.',
      [g.target('sum by (result) (rate(retrospective_reconcile_total{%s}[$__rate_interval]))' % ctl(false), '{{result}}')],
      g.pos(18, 56, 6, 7),
      unit='ops',
      min=0,
    ),
  ],

  // Grants and releases as the api-servers answered them; alerts of this mixin while firing.
  local requests(action, outcomes) =
    'sum by (lock) (increase(retrospective_lock_requests_total{%s, action="%s", outcome=~"%s"}[$__rate_interval])) > 0'
    % [api(), action, outcomes],
  local alertNames = std.set([
    rule.alert
    for group in self.prometheusAlerts.groups
    for rule in group.rules
    if std.objectHas(rule, 'alert')
  ]),
  local annotations = [
    g.annotation('Grants', 'green', requests('avail', 'granted'), '{{lock}} granted', 'The lock was taken.', ['lock']),
    g.annotation('Releases', 'blue', requests('release', 'released|forced'), '{{lock}} released', 'The lock was released (or force-released).', ['lock']),
    g.annotation(
      'Firing alerts',
      'red',
      // Alerts on absent() series carry no namespace: the empty alternative keeps them.
      'ALERTS{alertstate="firing", alertname=~"%s"%s, namespace=~"$namespace|"}' % [std.join('|', alertNames), cluster],
      '{{alertname}}',
      '{{severity}}: {{namespace}} {{lock}} {{holder}}',
      ['alertname', 'severity', 'lock'],
    ),
  ],

  local links = [
    g.link('Management view', '${view_url}', "The api-server's page: every lock's holder and content, live."),
    g.link('Runbooks', config.runbookURLPattern % 'runbooks', 'What each alert means and what to do (docs/operations.md).'),
  ],

  grafanaDashboards+:: {
    'retrospective.json': g.dashboard(
      'Retrospective lock',
      config.dashboardUid,
      config.dashboardTags,
      config.dashboardRefresh,
      [
        g.datasourceVariable,
        // Hidden unless showMultiCluster: with one cluster there is nothing to choose.
        g.queryVariable(
          'cluster',
          'Cluster',
          'label_values(up{%s}, %s)' % [config.anySelector, config.clusterLabel],
          multi=false,
          hide=if config.showMultiCluster then 0 else 2,
        ),
        g.queryVariable('namespace', 'Namespace', 'label_values(up{%s%s}, namespace)' % [config.anySelector, cluster]),
        g.queryVariable('lock', 'Lock', 'label_values(retrospective_lock_held{%s}, lock)' % ctl(false)),
        g.textVariable('view_url', 'Management view', config.managementViewURL),
      ],
      panels,
      annotations,
      links,
    ),
  },
}
