#!/usr/bin/env bash
# Docker helpers for the kind scripts (sourced after ../lib.sh).

# label <image>: the inputs hash an image was built from, or nothing.
label() { docker image inspect -f "{{index .Config.Labels \"retrospective.dev/inputs\"}}" "$1" 2>/dev/null || true; }

# build <docker build args>: the classic builder, quietly.
build() {
  DOCKER_BUILDKIT=0 docker build -q "$@" \
    2> >(grep -v -e DEPRECATED -e BuildKit -e environment-variable -e '^ *$' >&2) >/dev/null
}

# scratch_image <image> <binary> [entrypoint]: an image with only that static binary, in /bin as
# the upstream images have it (the prometheus-operator runs /bin/prometheus-config-reloader) and
# on PATH (kubeadm's static pods call their binaries by bare name), optionally as the entrypoint.
scratch_image() {
  local image=$1 binary=$2 entrypoint=${3:-}
  local name; name=$(basename "$binary")
  local ctx; ctx=$(mktemp -d)
  {
    echo "FROM scratch"
    echo "COPY $name /bin/$name"
    echo "ENV PATH=/bin"
    [ -n "$entrypoint" ] && echo "ENTRYPOINT [\"/bin/$name\"]"
  } > "$ctx/Dockerfile"
  local sum; sum=$(cat "$binary" "$ctx/Dockerfile" | sha256sum | cut -c1-12)
  if [ "$(label "$image")" != "$sum" ]; then
    cp "$binary" "$ctx/"
    echo "LABEL retrospective.dev/inputs=$sum" >> "$ctx/Dockerfile"
    build -t "$image" "$ctx"
  fi
  rm -rf "$ctx"
}
