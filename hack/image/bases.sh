#!/usr/bin/env bash
# Builds the Node base images `make image` uses where no registry can be reached, from the pinned
# Node binary and Debian's shared libraries (no shell, no package manager):
#   retrospective/node-runtime:<node>  like gcr.io/distroless/nodejs24-debian12:nonroot
#                                      (node at /nodejs/bin/node, user 65532)
#   retrospective/node-build:<node>    the same libraries with node and npm laid out as in the
#                                      upstream node:24 images (/usr/local/bin, /usr/local/lib)
# Run under hack/docker.sh exec. Rebuilt only when the Node version or this script changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../versions.env
source "$root/hack/versions.env"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/retrospective
node=$cache/node-$NODE_VERSION
runtime=retrospective/node-runtime:$NODE_VERSION
build=retrospective/node-build:$NODE_VERSION
inputs=$(cat "$0" "$root/hack/versions.env" | sha256sum | cut -c1-12)
log() { printf '[image] %s\n' "$*" >&2; }

built() { [ "$(docker image inspect -f '{{index .Config.Labels "retrospective.dev/inputs"}}' "$1" 2>/dev/null)" = "$inputs" ]; }
if built "$runtime" && built "$build"; then log "node base images $NODE_VERSION: cached"; exit 0; fi
[ -x "$node/bin/node" ] || "$root/hack/tools.sh" node

started=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "building node base images $NODE_VERSION from Debian's libc6, libgcc-s1 and libstdc++6"
mkdir -p "$work/debs" "$work/libs"
(cd "$work/debs" && apt-get download -qq libc6 libgcc-s1 libstdc++6 2>/dev/null) || {
  log "apt-get download failed; running apt-get update first"
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  (cd "$work/debs" && apt-get download -qq libc6 libgcc-s1 libstdc++6)
}
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/libs"; done
# Only the shared libraries and the loader; documentation and locale data stay out.
rm -rf "$work/libs/usr/share" "$work/libs/usr/lib/x86_64-linux-gnu/gconv" "$work/libs/usr/libexec" \
  "$work/libs/usr/bin" "$work/libs/usr/sbin" "$work/libs/sbin" "$work/libs/etc"

skeleton() {
  local dir=$1
  cp -a "$work/libs/." "$dir/"
  mkdir -p "$dir/etc" "$dir/tmp" "$dir/home/nonroot" "$dir/root"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$dir/etc/group"
  printf 'hosts: files dns\n' > "$dir/etc/nsswitch.conf"
}
mkdir -p "$work/runtime/nodejs/bin" "$work/build/usr/local/bin" "$work/build/usr/local/lib/node_modules"
skeleton "$work/runtime"
skeleton "$work/build"
cp "$node/bin/node" "$work/runtime/nodejs/bin/node"
cp "$node/bin/node" "$work/build/usr/local/bin/node"
cp -a "$node/npm" "$work/build/usr/local/lib/node_modules/npm"

cat > "$work/Dockerfile" <<DOCKERFILE
FROM scratch AS runtime
COPY runtime/ /
LABEL retrospective.dev/inputs="$inputs" org.opencontainers.image.description="Node $NODE_VERSION on Debian libraries, no shell"
ENV PATH=/nodejs/bin
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/nodejs/bin/node"]

FROM scratch AS build
COPY build/ /
LABEL retrospective.dev/inputs="$inputs" org.opencontainers.image.description="Node $NODE_VERSION and npm on Debian libraries, no shell"
ENV PATH=/usr/local/bin
DOCKERFILE
# chown in the context so the nonroot home belongs to its user without a RUN step (no shell).
chown -R 65532:65532 "$work/runtime/home/nonroot" 2>/dev/null || true
DOCKER_BUILDKIT=0 docker build -q --target runtime -t "$runtime" "$work" >/dev/null
DOCKER_BUILDKIT=0 docker build -q --target build -t "$build" "$work" >/dev/null
log "node base images built in $((SECONDS - started)) s: $runtime, $build"
