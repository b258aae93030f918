#!/usr/bin/env bash
# Shared by hack/tools.sh and hack/kind/build.sh: the per-user cache, logging, and building Go
# programs from their modules (with the replace lines a k8s.io staging module needs).
# shellcheck disable=SC2034
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
source "$root/hack/versions.env"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/retrospective
bin=$root/bin
mkdir -p "$bin" "$cache"

log() { printf '[%s] %s\n' "${LOG_TAG:-tools}" "$*" >&2; }

# link <cache-dir> <name>...: point bin/<name> at the cached binary.
link() {
  local dir=$1; shift
  for name in "$@"; do ln -sfn "$dir/$name" "$bin/$name"; done
}

# progress <name> <command>...: runs the command, saying every 30 s that it still runs (a cold
# build is minutes of silence otherwise). The ticker sleeps in 1 s steps so it ends with the command;
# inside another progress (dynamic scope), only the outer one ticks.
progress() {
  local name=$1; shift
  if [ -n "${progress_ticking:-}" ]; then "$@"; return $?; fi
  local started=$SECONDS ticker rc=0 progress_ticking=1
  (
    n=0
    while sleep 1; do
      n=$((n + 1))
      [ $((n % 30)) -eq 0 ] && log "$name: still running ($((SECONDS - started)) s)"
    done
  ) &
  ticker=$!
  # In the background, where set -e still holds inside a function (in `cmd || rc=$?` bash
  # ignores -e in everything cmd runs, and a failed step would be cached as built).
  "$@" &
  wait $! || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  return "$rc"
}

# go_build <dir> <module@version> <go.mod body> <ldflags> <package>...: build binaries in a wrapper module.
go_build() {
  local dir=$1 mod=$2 body=$3 ldflags=$4; shift 4
  local work; work=$(mktemp -d)
  printf 'module retrospective.local/tools\n\ngo 1.26\n\n%s\n' "$body" > "$work/go.mod"
  (cd "$work" && go get "$mod" >/dev/null 2>&1 || true)
  for pkg in "$@"; do
    local started=$SECONDS
    log "go build $pkg (first run only; cached in $dir)"
    progress "go build $(basename "$pkg")" bash -c 'cd "$1" && go get "$2" && CGO_ENABLED=${CGO_ENABLED:-0} go build -trimpath -tags "${GO_TAGS:-}" -ldflags "-s -w $3" -o "$4/" "$2"' _ "$work" "$pkg" "$ldflags" "$dir"
    log "built $(basename "$pkg") in $((SECONDS - started)) s"
  done
  rm -rf "$work"
}

# staging_replaces <module@version> <version>: one replace line per local replace in that module's go.mod.
staging_replaces() {
  local gomod minor=$2
  gomod=$(cd /tmp && go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  awk -v v="$minor" '$2 == "=>" && $3 ~ /^\.\.?\// { printf "replace %s => %s %s\n", $1, $1, v }' "$gomod"
}

# module_dir <module@version>: where the Go module cache unpacked it.
module_dir() {
  (cd /tmp && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}

# The build tags of every binary built from k8s.io/kubernetes, the same for the control plane of
# the test tier and the kind node's binaries: Go's build cache then compiles the packages they
# share (most of them) once.
KUBE_GO_TAGS="selinux notest grpcnotrace"

# kube_ldflags: version stamps for binaries built from k8s.io/kubernetes.
kube_ldflags() {
  local v=v$KUBERNETES_VERSION
  printf '%s ' "-X k8s.io/component-base/version.gitVersion=$v" "-X k8s.io/client-go/pkg/version.gitVersion=$v" \
    "-X k8s.io/component-base/version.gitMajor=1" "-X k8s.io/component-base/version.gitMinor=${KUBERNETES_VERSION#1.}" \
    "-X k8s.io/component-base/version.gitTreeState=clean"
}
