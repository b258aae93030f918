#!/usr/bin/env bash
# Builds (once, cached per user) the binaries of an offline kind cluster from Go modules:
# the node's kubelet, kubeadm and control plane, containerd v2, CoreDNS, the pause container,
# and the workloads' Traefik and prometheus-operator. Prints nothing else on stdout.
set -euo pipefail
LOG_TAG=kind
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

# step <name> <dir> <check-file> <function>: runs the function unless <dir>/<check-file> exists.
step() {
  local name=$1 dir=$2 check=$3 fn=$4
  if [ -e "$dir/$check" ]; then log "$name: cached"; return; fi
  local started=$SECONDS
  log "$name: building (first run only)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  progress "$name" "$fn" "$dir.tmp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "$name: built in $((SECONDS - started)) s"
}

kube_node() {
  local v=v$KUBERNETES_VERSION
  GO_TAGS=$KUBE_GO_TAGS go_build "$1" "k8s.io/kubernetes@$v" \
    "$(staging_replaces "k8s.io/kubernetes@$v" "v0.${KUBERNETES_VERSION#1.}")" "$(kube_ldflags)" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kube-proxy
}

containerd() {
  local m=github.com/containerd/containerd/v2
  GO_TAGS="no_aufs no_zfs no_btrfs no_devmapper" go_build "$1" "$m@v$CONTAINERD_VERSION" "" \
    "-X $m/version.Version=v$CONTAINERD_VERSION" \
    "$m/cmd/containerd" "$m/cmd/ctr" "$m/cmd/containerd-shim-runc-v2"
}

coredns() {
  go_build "$1" "github.com/coredns/coredns@v$COREDNS_VERSION" "" "" github.com/coredns/coredns
}

# The pause container's C source ships in the kubernetes module; kubelet expects it static.
pause() {
  local src; src=$(module_dir "k8s.io/kubernetes@v$KUBERNETES_VERSION")/build/pause/linux/pause.c
  gcc -Os -Wall -Werror -static -DVERSION="v$KUBERNETES_VERSION-retrospective" -o "$1/pause" "$src"
  strip "$1/pause"
}

# copy_module MODULE@VERSION DIR: a writable copy of a module's source. Traefik and the operator
# carry replace lines of their own, so they are built inside such a copy.
copy_module() {
  mkdir -p "$2" && cp -r "$(module_dir "$1")/." "$2/" && chmod -R u+w "$2"
}

# Traefik needs modules the proxy here refuses: its go-http-auth fork (upstream v0.4.0 plus the
# two functions hack/kind/traefik/go-http-auth/fork.go adds stand in for it), the SDKs of ACME DNS providers, reached only through lego's generated
# provider registry, which hack/kind/traefik/dns_providers.go replaces (ACME is not used here),
# and its empty dynamic/ext extension module (hack/kind/traefik/ext).
traefik() {
  local out=$1 work lego
  work=$(mktemp -d)
  copy_module "github.com/traefik/traefik/v3@v$TRAEFIK_VERSION" "$work"
  lego=$(sed -n 's#^\s*github.com/go-acme/lego/v5 \(v[^ ]*\)$#\1#p' "$work/go.mod" | head -1)
  copy_module "github.com/go-acme/lego/v5@$lego" "$work/lego"
  rm -f "$work"/lego/providers/dns/*_test.go
  cp "$root/hack/kind/traefik/dns_providers.go" "$work/lego/providers/dns/zz_gen_dns_providers.go"
  # The nested module its go.mod replaces with ./pkg/config/dynamic/ext is not in the zip.
  mkdir -p "$work/pkg/config/dynamic/ext" && cp "$root"/hack/kind/traefik/ext/* "$work/pkg/config/dynamic/ext/"
  copy_module github.com/abbot/go-http-auth@v0.4.0 "$work/go-http-auth"
  rm -rf "$work"/go-http-auth/*_test.go "$work/go-http-auth/examples"
  cp "$root/hack/kind/traefik/go-http-auth/fork.go" "$work/go-http-auth/"
  printf 'module github.com/abbot/go-http-auth\n\ngo 1.21\n' >"$work/go-http-auth/go.mod"
  (cd "$work" \
    && go mod edit -replace github.com/go-acme/lego/v5=./lego \
    -replace github.com/abbot/go-http-auth=./go-http-auth \
    && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" -o "$out/" ./cmd/traefik)
  rm -rf "$work"
}

# The operator's go.mod replaces its API and client modules with ./pkg/apis/monitoring and
# ./pkg/client, which the zip leaves out: they are modules of their own at the same version.
operator() {
  local out=$1 v=v$PROMETHEUS_OPERATOR_VERSION work sub
  local mod=github.com/prometheus-operator/prometheus-operator
  work=$(mktemp -d)
  copy_module "$mod@$v" "$work"
  for sub in pkg/apis/monitoring pkg/client; do copy_module "$mod/$sub@$v" "$work/$sub"; done
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_OPERATOR_VERSION" \
    -o "$out/" ./cmd/operator ./cmd/prometheus-config-reloader)
  rm -rf "$work"
}

# Two lanes side by side, of about equal length on a cold cache (measured on 2 cores: the
# Kubernetes node binaries 330 s, containerd 140 s, CoreDNS 200 s, Traefik 335 s, the operator
# 170 s). Each Go build alone leaves cores idle while it fetches modules and links.
node_lane() {
  step "kubelet, kubeadm, kube-controller-manager, kube-scheduler, kube-proxy $KUBERNETES_VERSION" \
    "$cache/kubernetes-node-$KUBERNETES_VERSION" kube-proxy kube_node
  step "CoreDNS $COREDNS_VERSION" "$cache/coredns-$COREDNS_VERSION" coredns coredns
  step "pause" "$cache/pause-$KUBERNETES_VERSION" pause pause
}
node_lane &
node_lane=$!
# A failing step of this lane must not leave the other building (and holding the output).
trap 'kill "$node_lane" 2>/dev/null || true' EXIT
step "containerd $CONTAINERD_VERSION" "$cache/containerd-$CONTAINERD_VERSION" containerd-shim-runc-v2 containerd
step "Traefik $TRAEFIK_VERSION" "$cache/traefik-$TRAEFIK_VERSION" traefik traefik
step "prometheus-operator $PROMETHEUS_OPERATOR_VERSION" "$cache/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" \
  prometheus-config-reloader operator
wait "$node_lane"
trap - EXIT
