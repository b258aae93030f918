// kube-prometheus with the retrospective mixin, for users who build their monitoring stack with
// jsonnet-bundler. Vendor kube-prometheus first (`jb install` reads jsonnetfile.json), then:
//
//   jsonnet -J vendor -J .. -m manifests main.jsonnet
//
// `-J ..` makes the mixin (manifests/monitoring/mixin.libsonnet) importable. The chart then needs
// only its ServiceMonitor: --set monitoring.enabled=true,monitoring.prometheusRule.enabled=false,monitoring.dashboard.enabled=false
local addMixin = import 'kube-prometheus/lib/mixin.libsonnet';

// Where the chart is installed: Prometheus needs RBAC there to discover the ServiceMonitor's targets.
local appNamespace = 'retrospective';

local retrospective = addMixin({
  name: 'retrospective',
  namespace: 'monitoring',
  dashboardFolder: 'Retrospective',
  mixin: (import 'mixin.libsonnet') + {
    _config+:: {
      // Thresholds and selectors of manifests/monitoring/config.libsonnet can be changed here.
    },
  },
});

local kp = (import 'kube-prometheus/main.libsonnet') + {
  values+:: {
    common+: { namespace: 'monitoring' },
    // kube-prometheus's Prometheus only has RBAC in default, kube-system and monitoring.
    prometheus+: { namespaces+: [appNamespace] },
    // kube-prometheus has no dashboard sidecar: dashboards go in through jsonnet.
    grafana+: { folderDashboards+:: retrospective.grafanaDashboards },
  },
};

{ 'setup/0namespace-namespace': kp.kubePrometheus.namespace } +
{
  ['setup/prometheus-operator-' + name]: kp.prometheusOperator[name]
  for name in std.filter((function(name) name != 'serviceMonitor' && name != 'prometheusRule'), std.objectFields(kp.prometheusOperator))
} +
{ 'prometheus-operator-serviceMonitor': kp.prometheusOperator.serviceMonitor } +
{ 'prometheus-operator-prometheusRule': kp.prometheusOperator.prometheusRule } +
{ 'kube-prometheus-prometheusRule': kp.kubePrometheus.prometheusRule } +
{ ['alertmanager-' + name]: kp.alertmanager[name] for name in std.objectFields(kp.alertmanager) } +
{ ['blackbox-exporter-' + name]: kp.blackboxExporter[name] for name in std.objectFields(kp.blackboxExporter) } +
{ ['grafana-' + name]: kp.grafana[name] for name in std.objectFields(kp.grafana) } +
{ ['kube-state-metrics-' + name]: kp.kubeStateMetrics[name] for name in std.objectFields(kp.kubeStateMetrics) } +
{ ['kubernetes-' + name]: kp.kubernetesControlPlane[name] for name in std.objectFields(kp.kubernetesControlPlane) } +
{ ['node-exporter-' + name]: kp.nodeExporter[name] for name in std.objectFields(kp.nodeExporter) } +
{ ['prometheus-' + name]: kp.prometheus[name] for name in std.objectFields(kp.prometheus) } +
{ ['prometheus-adapter-' + name]: kp.prometheusAdapter[name] for name in std.objectFields(kp.prometheusAdapter) } +
{ 'retrospective-prometheusRule': retrospective.prometheusRules }
