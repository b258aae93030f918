// The retrospective monitoring mixin, in the kubernetes-mixin shape: _config, prometheusAlerts,
// grafanaDashboards. No third-party library; render with plain jsonnet (`make generate`).
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
