#!/usr/bin/env bash
# Builds the images the kind cluster runs besides the node's own, under their upstream names, so
# that KIND_IMAGES=upstream can pull the very same names instead: prometheus-operator and its
# config reloader, Prometheus, Alertmanager and Traefik, each FROM scratch around the binary built
# here. Prints the image names on stdout. Run under hack/docker.sh exec, after binaries.sh.
set -euo pipefail
LOG_TAG=kind
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=common.sh
source "$root/hack/kind/common.sh"

po=$cache/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION
images=(
  "quay.io/prometheus-operator/prometheus-operator:v$PROMETHEUS_OPERATOR_VERSION $po/operator"
  "quay.io/prometheus-operator/prometheus-config-reloader:v$PROMETHEUS_OPERATOR_VERSION $po/prometheus-config-reloader"
  "quay.io/prometheus/prometheus:v$PROMETHEUS_VERSION $cache/prometheus-$PROMETHEUS_VERSION/prometheus"
  "quay.io/prometheus/alertmanager:v$ALERTMANAGER_VERSION $cache/alertmanager-$ALERTMANAGER_VERSION/alertmanager"
  "docker.io/library/traefik:v$TRAEFIK_VERSION $cache/traefik-$TRAEFIK_VERSION/traefik"
)
started=$SECONDS
for entry in "${images[@]}"; do
  read -r image binary <<<"$entry"
  scratch_image "$image" "$binary" entrypoint
  echo "$image"
done
log "workload images ready in $((SECONDS - started)) s"
