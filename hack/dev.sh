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
for i in 0 1; do
  PORT=$((9090 + i)) METRICS_PORT=$((8080 + 2 * i)) node api-server/dist/main.js &
  pids+=($!)
  METRICS_PORT=$((8081 + 2 * i)) node controller/dist/main.js &
  pids+=($!)
done
echo "api-servers on :9090 and :9091 (metrics :8080, :8082), controller metrics on :8081 and :8083" >&2
echo "kubectl --kubeconfig $dir/kubeconfig get lease -w" >&2
wait
