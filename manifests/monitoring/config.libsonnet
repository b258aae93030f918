// Selectors and thresholds of the retrospective mixin. Alerts and dashboards read them; nothing
// else names a job. Override with `mixin + { _config+:: { ... } }`.
{
  _config+:: {
    // The chart's ServiceMonitor sets these job names (jobLabel retrospective.dev/job).
    apiServerSelector: 'job="retrospective-api-server"',
    controllerSelector: 'job="retrospective-controller"',
    anySelector: 'job=~"retrospective-api-server|retrospective-controller"',

    // RepeatedlyHeldTooLong counts long holds over this window, and fires on every second one.
    // The held-too-long threshold itself is each lock's: its Lock's spec.heldTooLongSeconds, or the
    // controller's HELD_TOO_LONG_SECONDS (chart value lock.heldTooLongSeconds) for a LOCKS list,
    // exported per lock as retrospective_lock_held_too_long_threshold_seconds{lock}.
    longHoldWindow: '24h',

    // Outcomes of lock requests that are the service's fault (5xx), not the client's.
    failureOutcomes: 'store_unavailable|not_provisioned|lock_too_large|lock_invalid|internal',
    failureRatio: 0.05,
    failureRatioFor: '10m',

    downFor: '5m',
    noLeaderFor: '1m',
    kubeApiErrorRatio: 0.05,
    kubeApiErrorsFor: '5m',
    watchDisconnectedFor: '5m',
    connectionsDroppedFor: '5m',

    runbookURLPattern: 'https://github.com/retrospective-dev/retrospective/blob/main/docs/operations.md#%s',

    dashboardUid: 'retrospective-lock',
    dashboardTags: ['retrospective'],
    dashboardRefresh: '30s',

    // One Grafana over several clusters' metrics (kubernetes-mixin's convention): a cluster
    // variable, shown, and every dashboard query matching clusterLabel="$cluster". Off, the
    // variable is hidden and no query names the label.
    showMultiCluster: false,
    clusterLabel: 'cluster',

    // Where the dashboard links to the management view (the api-server's `/`): the default of
    // its hidden view_url variable, which `?var-view_url=` in the dashboard URL overrides.
    managementViewURL: 'http://retrospective.local/',
  },
}
