#!/usr/bin/env bash
# Two api-servers (:9090, :9091) and two controllers on the local control plane, until Ctrl-C.
set -euo pipefail
dir=${1:-.cache/cluster}
export KUBECONFIG=$dir/kubeconfig STORE=kubernetes NAMESPACE=${NAMESPACE:-default}
pids=()
stop() {
  trap - EXIT INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
}
trap stop EXIT INT TERM
for port in 9090 9091; do
  PORT=$port node api-server/dist/main.js &
  pids+=($!)
done
for port in 8081 8082; do
  METRICS_PORT=$port node controller/dist/main.js &
  pids+=($!)
done
echo "api-servers on :9090 and :9091, controller metrics on :8081 and :8082" >&2
echo "kubectl --kubeconfig $dir/kubeconfig get lease -w" >&2
wait
