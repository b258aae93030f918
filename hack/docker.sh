#!/usr/bin/env bash
# A Docker daemon for the project: the user's own when `docker info` works, otherwise a
# project-owned dockerd (Debian's docker.io) with its own socket, data root, exec root and config
# under the per-user cache. The system's Docker configuration is never read or written.
#
# Usage: hack/docker.sh up          ensure a daemon; print the DOCKER_HOST to use ('' = the user's)
#        hack/docker.sh exec CMD... run CMD with DOCKER_HOST set to that daemon
#        hack/docker.sh down        stop the project-owned daemon (the user's is left alone)
#        hack/docker.sh status      say which daemon would be used
#        hack/docker.sh privileged  make sure privileged containers run (kind's nodes are privileged)
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/retrospective/docker
# Sockets live under a short path: unix socket paths are limited to 108 bytes.
run=${RETROSPECTIVE_DOCKER_RUN:-/tmp/retrospective-docker-$(id -u)}
sock=$run/docker.sock
pidfile=$run/dockerd.pid
config=$cache/daemon.json

log() { printf '[docker] %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

users_docker() { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }
ours_running() {
  [ -S "$sock" ] && DOCKER_HOST=unix://$sock timeout 10 docker info >/dev/null 2>&1
}

install_engine() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return
  log "installing Debian's docker.io (apt-get; the system daemon is not configured or started by us)"
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends docker.io >/dev/null
}

# The daemon's configuration. RUNTIME_WRAPPER (hack/kind) adds a default runtime that filters
# capabilities this machine cannot grant; without it the plain runc is used.
write_config() {
  mkdir -p "$cache"
  local runtime=""
  if [ -f "$cache/runtime-wrapper" ]; then
    runtime=$(printf ',\n  "default-runtime": "capfilter",\n  "runtimes": {"capfilter": {"path": "%s"}}' \
      "$(cat "$cache/runtime-wrapper")")
  fi
  # No default bridge (it would be named docker0 and could clash with a system Docker started
  # later): builds use the host network, kind and tests create networks of their own.
  cat > "$config.tmp" <<JSON
{
  "bridge": "none",
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}$runtime
}
JSON
  mv "$config.tmp" "$config"
}

start_ours() {
  install_engine
  write_config
  mkdir -p "$run" "$cache/data"
  log "starting a project-owned dockerd (socket $sock, data $cache/data, log $cache/dockerd.log)"
  local group; group=$(id -g)
  # setsid: the daemon outlives this script and the make that ran it.
  sudo_ setsid dockerd --host "unix://$sock" --group "$group" --data-root "$cache/data" \
    --exec-root "$run/exec" --pidfile "$pidfile" --config-file "$config" \
    >>"$cache/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    ours_running && return
    sleep 0.5
  done
  log "dockerd did not come up in 60 s; the end of $cache/dockerd.log:"
  tail -n 20 "$cache/dockerd.log" >&2
  return 1
}

stop_ours() {
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the project-owned dockerd (pid $pid)"
    sudo_ kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
}

# Prints the DOCKER_HOST to use: empty for the user's daemon.
up() {
  if ours_running; then echo "unix://$sock"; return; fi
  if users_docker; then echo ""; return; fi
  start_ours
  echo "unix://$sock"
}

# A busybox image, built from Debian's busybox-static with no registry, to probe the daemon.
probe_image() {
  local image=retrospective/probe:busybox
  docker image inspect "$image" >/dev/null 2>&1 && { echo "$image"; return; }
  local work; work=$(mktemp -d)
  (cd "$work" && apt-get download -qq busybox-static 2>/dev/null) || {
    sudo_ apt-get update -qq && (cd "$work" && apt-get download -qq busybox-static)
  }
  mkdir "$work/root" && dpkg-deb -x "$work"/busybox-static_*.deb "$work/root"
  tar -C "$work/root" -c . | docker import --change 'ENTRYPOINT ["/bin/busybox"]' - "$image" >/dev/null
  rm -rf "$work"
  echo "$image"
}

privileged_works() {
  docker run --rm --privileged --network none "$(probe_image)" true >/dev/null 2>&1
}

# Privileged containers fail on machines whose capability bounding set lacks what Docker grants
# them. On the project-owned daemon only, register a runtime that filters those capabilities out.
privileged() {
  local host; host=$(up)
  [ -n "$host" ] && export DOCKER_HOST=$host
  privileged_works && return 0
  if [ -z "$host" ]; then
    log "privileged containers fail on your Docker daemon (kind needs them); it is yours, so it is left as it is"
    return 1
  fi
  local root; root=$(cd "$(dirname "$0")/.." && pwd)
  local hash; hash=$(cat "$root"/hack/kind/capfilter/*.go "$root"/hack/kind/capfilter/go.mod | sha256sum | cut -c1-12)
  local wrapper=$cache/capfilter-$hash/capfilter
  if [ ! -x "$wrapper" ]; then
    log "building the capability-filtering runtime (hack/kind/capfilter)"
    (cd "$root/hack/kind/capfilter" && CGO_ENABLED=0 go build -trimpath -o "$wrapper" .)
  fi
  echo "$wrapper" > "$cache/runtime-wrapper"
  log "privileged containers fail here; restarting the project-owned dockerd with $wrapper as its default runtime"
  stop_ours
  start_ours
  privileged_works || { log "privileged containers still fail with the wrapper; see $cache/dockerd.log"; return 1; }
}

case ${1:-} in
  up) up ;;
  exec)
    shift
    host=$(up)
    if [ -n "$host" ]; then export DOCKER_HOST=$host; fi
    exec "$@" ;;
  down) stop_ours ;;
  restart) stop_ours; up >/dev/null ;;
  privileged) privileged ;;
  status)
    if ours_running; then echo "project-owned dockerd at unix://$sock"
    elif users_docker; then echo "the user's Docker ($(docker context show 2>/dev/null || echo default))"
    else echo "no Docker daemon running"; fi ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
