// Alerts, per docs/design.md section 7. Each has a severity, a static summary, a templated description and
// a runbook in docs/operations.md (anchor: the alert name in lower case).
//
// Severities follow the monitoring-mixins rule: `critical` pages a person now, so only an outage
// every user meets is critical (RetrospectiveAPIDown: nobody can take, edit or release a lock).
// Everything a person should look at within working hours is `warning`, the lock alerts included:
// a long hold, even a repeated one, is a team's habit to talk about, not an emergency.
{
  local config = self._config,
  local alert(name, severity, expr, summary, description, forDuration=null) = {
    alert: name,
    expr: std.stripChars(expr, '\n'),
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: config.runbookURLPattern % std.asciiLower(name),
    },
  } + (if forDuration == null then {} else { 'for': forDuration }),

  // The current hold of each lock with its holder, where it has lasted past that lock's threshold
  // (its Lock's heldTooLongSeconds, exported per lock by the controller).
  local heldTooLong = |||
    max by (namespace, lock, holder) (
      retrospective_lock_held_seconds{%(controllerSelector)s}
      * ignoring (holder) group_left (holder)
      retrospective_lock_holder_info{%(controllerSelector)s}
    )
    > on (namespace, lock) group_left ()
    max by (namespace, lock) (retrospective_lock_held_too_long_threshold_seconds{%(controllerSelector)s})
  ||| % config,

  // Long holds within the window, exactly: max - min of the counter (never extrapolated), summed
  // over controller replicas (each counts the holds it saw cross while leading).
  local longHolds = |||
    sum by (namespace, lock) (
      max_over_time(retrospective_lock_long_holds_total{%(controllerSelector)s}[%(longHoldWindow)s])
      - min_over_time(retrospective_lock_long_holds_total{%(controllerSelector)s}[%(longHoldWindow)s])
    )
  ||| % config,

  local down(selector) = |||
    (sum by (namespace) (up{%s}) == 0)
    or
    absent(up{%s})
  ||| % [selector, selector],

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'retrospective-lock',
        rules: [
          alert(
            'RetrospectiveLockHeldTooLong',
            'warning',
            heldTooLong,
            'A lock has been held for longer than the held-too-long threshold.',
            '{{ $labels.holder }} has held the lock {{ $labels.lock }} in {{ $labels.namespace }} for {{ $value | humanizeDuration }}.',
          ),
          alert(
            'RetrospectiveLockRepeatedlyHeldTooLong',
            'warning',
            |||
              %s
              and on (namespace, lock)
              (%s %% 2 == 0)
              and on (namespace, lock)
              (%s > 0)
            ||| % [std.stripChars(heldTooLong, '\n'), std.stripChars(longHolds, '\n'), std.stripChars(longHolds, '\n')],
            'A lock is held too long again: the second (or fourth, ...) long hold within the window.',
            '{{ $labels.holder }} has held the lock {{ $labels.lock }} in {{ $labels.namespace }} for {{ $value | humanizeDuration }}, an even-numbered long hold within %s.' % config.longHoldWindow,
          ),
          alert(
            'RetrospectiveLockFailureRatioHigh',
            'warning',
            |||
              sum by (namespace) (rate(retrospective_lock_requests_total{%(apiServerSelector)s, outcome=~"%(failureOutcomes)s"}[5m]))
              /
              sum by (namespace) (rate(retrospective_lock_requests_total{%(apiServerSelector)s}[5m]))
              > %(failureRatio)s
            ||| % config,
            'Too many lock requests fail on the server side.',
            '{{ $value | humanizePercentage }} of lock requests in {{ $labels.namespace }} failed with a server-side error over 5 minutes.',
            config.failureRatioFor,
          ),
        ],
      },
      {
        name: 'retrospective-components',
        rules: [
          alert(
            'RetrospectiveAPIDown',
            'critical',
            down(config.apiServerSelector),
            'No retrospective api-server is up.',
            'Prometheus has no api-server target up{{ with $labels.namespace }} in {{ . }}{{ end }}: nobody can take, edit or release a lock.',
            config.downFor,
          ),
          alert(
            'RetrospectiveControllerDown',
            'warning',
            down(config.controllerSelector),
            'No retrospective controller is up.',
            'Prometheus has no controller target up{{ with $labels.namespace }} in {{ . }}{{ end }}: holds do not expire and no Events or history are recorded.',
            config.downFor,
          ),
          alert(
            'RetrospectiveNoControllerLeader',
            'warning',
            'sum by (namespace) (retrospective_controller_leader{%(controllerSelector)s}) == 0' % config,
            'No retrospective controller leads.',
            'Controllers in {{ $labels.namespace }} run but none holds the leader Lease: holds do not expire and no Events or history are recorded.',
            config.noLeaderFor,
          ),
          alert(
            'RetrospectiveKubernetesAPIErrors',
            'warning',
            |||
              sum by (namespace, job) (rate(retrospective_kube_requests_total{%(anySelector)s, code=~"5..|429|error"}[5m]))
              /
              sum by (namespace, job) (rate(retrospective_kube_requests_total{%(anySelector)s}[5m]))
              > %(kubeApiErrorRatio)s
            ||| % config,
            'Calls to the Kubernetes API fail.',
            '{{ $value | humanizePercentage }} of the Kubernetes API calls of {{ $labels.job }} in {{ $labels.namespace }} failed or got no answer over 5 minutes.',
            config.kubeApiErrorsFor,
          ),
          alert(
            'RetrospectiveConnectionsDropped',
            'warning',
            'sum by (namespace, pod) (increase(retrospective_http_connections_dropped_total{%(apiServerSelector)s, reason="connection_limit"}[5m])) > 0' % config,
            'An api-server closes new connections: it holds as many as it may.',
            '{{ $labels.pod }} in {{ $labels.namespace }} closed {{ $value | humanize }} new connections over 5 minutes as they arrived (HTTP_MAX_CONNECTIONS): callers are reset or get 502 from the ingress.',
            config.connectionsDroppedFor,
          ),
          alert(
            'RetrospectiveLockWatchDisconnected',
            'warning',
            'min by (namespace, job, pod) (retrospective_watch_connected{%(anySelector)s}) == 0' % config,
            'A process has lost its watch of the lock Leases.',
            '{{ $labels.pod }} ({{ $labels.job }}) in {{ $labels.namespace }} has not had a connected Lease watch: it answers check from a cache that may be stale.',
            config.watchDisconnectedFor,
          ),
        ],
      },
    ],
  },
}
