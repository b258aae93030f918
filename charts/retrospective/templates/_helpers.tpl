{{/* The chart name, overridable. */}}
{{- define "retrospective.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name: the release name, plus the chart name unless it is already in it. */}}
{{- define "retrospective.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "retrospective.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "retrospective.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "retrospective.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: retrospective
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select this release's pods. */}}
{{- define "retrospective.selectorLabels" -}}
app.kubernetes.io/name: {{ include "retrospective.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component (api-server or controller); call with (dict "root" $ "component" "api-server"). */}}
{{- define "retrospective.componentLabels" -}}
{{ include "retrospective.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "retrospective.componentSelectorLabels" -}}
{{ include "retrospective.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image reference; a digest wins over the tag, which defaults to the appVersion. */}}
{{- define "retrospective.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "retrospective.apiServer.fullname" -}}
{{- printf "%s-api-server" (include "retrospective.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "retrospective.controller.fullname" -}}
{{- printf "%s-controller" (include "retrospective.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "retrospective.apiServer.serviceAccountName" -}}
{{- if .Values.apiServer.serviceAccount.create -}}
{{- default (include "retrospective.apiServer.fullname" .) .Values.apiServer.serviceAccount.name -}}
{{- else -}}
{{- required "apiServer.serviceAccount.name is required when apiServer.serviceAccount.create is false" .Values.apiServer.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "retrospective.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (include "retrospective.controller.fullname" .) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- required "controller.serviceAccount.name is required when controller.serviceAccount.create is false" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The controller's leader-election Lease. */}}
{{- define "retrospective.leaderElectionId" -}}
{{- printf "%s-leader" (include "retrospective.controller.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The history ConfigMap of each lock, as a YAML list. */}}
{{- define "retrospective.historyConfigMaps" -}}
{{- range .Values.locks }}
- {{ printf "%s-history" . | quote }}
{{- end }}
{{- end -}}

{{/* Environment both processes share. */}}
{{- define "retrospective.commonEnv" -}}
- name: NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: STORE
  value: kubernetes
- name: LOCK_SOURCE
  value: {{ .Values.lockSource | quote }}
- name: LOCKS
  value: {{ join "," .Values.locks | quote }}
- name: HOLD_TIMEOUT_SECONDS
  value: {{ .Values.lock.holdTimeoutSeconds | quote }}
- name: HELD_TOO_LONG_SECONDS
  value: {{ .Values.lock.heldTooLongSeconds | quote }}
- name: HISTORY_SIZE
  value: {{ .Values.lock.historySize | quote }}
- name: WAIT_LINE_FORM
  value: {{ .Values.waitLineForm | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/*
A component's topology spread constraints, as a YAML list: the soft default over nodes (while it
has more than one replica; pod-template-hash keeps a rollout's old pods out of the count), then
the user's. Call with (dict "root" $ "component" "api-server" "values" .Values.apiServer).
*/}}
{{- define "retrospective.topologySpreadConstraints" -}}
{{- $spread := .values.topologySpread -}}
{{- /* A constraint of the user's on the same key and policy replaces the default: the API server
     refuses two with the same topologyKey and whenUnsatisfiable. */}}
{{- $same := false -}}
{{- range .values.topologySpreadConstraints -}}
{{- if and (eq .topologyKey $spread.topologyKey) (eq (.whenUnsatisfiable | default "DoNotSchedule") $spread.whenUnsatisfiable) -}}
{{- $same = true -}}
{{- end -}}
{{- end -}}
{{- if and $spread.enabled (gt (int .values.replicaCount) 1) (not $same) }}
- maxSkew: {{ $spread.maxSkew }}
  topologyKey: {{ $spread.topologyKey }}
  whenUnsatisfiable: {{ $spread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "retrospective.componentSelectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
  matchLabelKeys: [pod-template-hash]
{{- end }}
{{- with .values.topologySpreadConstraints }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Checks that options fit together; fails with a message naming the values to change. */}}
{{- define "retrospective.validate" -}}
{{- if and .Values.ingress.enabled .Values.httpRoute.enabled -}}
{{- fail "ingress.enabled and httpRoute.enabled are both true: expose the service through one of them" -}}
{{- end -}}
{{- if ge (int .Values.apiServer.shutdownTimeoutSeconds) (int .Values.apiServer.terminationGracePeriodSeconds) -}}
{{- fail "apiServer.shutdownTimeoutSeconds must be less than apiServer.terminationGracePeriodSeconds, or the kubelet kills the pod mid-drain" -}}
{{- end -}}
{{- if ge (int .Values.apiServer.drainDelaySeconds) (int .Values.apiServer.shutdownTimeoutSeconds) -}}
{{- fail "apiServer.drainDelaySeconds must be less than apiServer.shutdownTimeoutSeconds" -}}
{{- end -}}
{{- if and .Values.apiServer.maxConnections (le (int .Values.apiServer.maxConnections) (int .Values.apiServer.websocket.maxConnections)) -}}
{{- fail "apiServer.maxConnections must be above apiServer.websocket.maxConnections (WebSocket clients hold connections too), or 0" -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
{{- fail "httpRoute.parentRefs must name at least one Gateway" -}}
{{- end -}}
{{- $le := .Values.controller.leaderElection -}}
{{- if or (le (int $le.leaseDurationSeconds) (int $le.renewDeadlineSeconds)) (le (int $le.renewDeadlineSeconds) (int $le.retryPeriodSeconds)) -}}
{{- fail "controller.leaderElection needs leaseDurationSeconds > renewDeadlineSeconds > retryPeriodSeconds" -}}
{{- end -}}
{{- $lease := add (int .Values.lock.maxContentBytes) (mul (int .Values.apiServer.waiting.maxWaiters) 440) 2048 -}}
{{- if gt (int $lease) 245760 -}}
{{- fail (printf "lock.maxContentBytes + apiServer.waiting.maxWaiters x 440 must stay under 243712 bytes (it is %d), or a full lock would not fit in its Lease (256 KiB of annotations): lower one of them" (sub $lease 2048)) -}}
{{- end -}}
{{- if gt (int .Values.apiServer.waiting.maxPerUser) (int .Values.apiServer.waiting.maxWaiters) -}}
{{- fail "apiServer.waiting.maxPerUser must not be more than apiServer.waiting.maxWaiters" -}}
{{- end -}}
{{- if and .Values.monitoring.enabled .Values.monitoring.podMonitor.enabled .Values.monitoring.serviceMonitor.enabled -}}
{{- fail "monitoring.podMonitor.enabled and monitoring.serviceMonitor.enabled are both true: Prometheus would scrape every pod twice; set monitoring.serviceMonitor.enabled=false" -}}
{{- end -}}
{{- if and .Values.monitoring.alertmanagerConfig.enabled (not (or .Values.monitoring.alertmanagerConfig.webhook.url .Values.monitoring.alertmanagerConfig.webhook.urlSecret.name)) -}}
{{- fail "monitoring.alertmanagerConfig.enabled needs monitoring.alertmanagerConfig.webhook.url or .webhook.urlSecret" -}}
{{- end -}}
{{- end -}}
