#!/usr/bin/env bash
# Builds the project image. By default its bases are built here from Debian packages and the
# pinned Node (hack/image/bases.sh), so no registry is needed; IMAGE_BASE=upstream uses the
# Dockerfile's defaults (node:24 and distroless) for those who can pull.
# Usage (under hack/docker.sh exec): hack/image/build.sh <image:tag>
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../versions.env
source "$root/hack/versions.env"
image=${1:?usage: build.sh <image:tag>}
log() { printf '[image] %s\n' "$*" >&2; }

args=()
if [ "${IMAGE_BASE:-local}" = local ]; then
  "$root/hack/image/bases.sh"
  args+=(--build-arg "BUILD_IMAGE=retrospective/node-build:$NODE_VERSION"
    --build-arg "BASE_IMAGE=retrospective/node-runtime:$NODE_VERSION")
fi
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/charts/retrospective/Chart.yaml")
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
started=$SECONDS
log "building $image (bases: ${IMAGE_BASE:-local})"
# The classic builder: it needs no buildx plugin and no registry for its frontend. The build
# stage reaches the npm registry over the host's network, trusting the host's extra CAs.
DOCKER_BUILDKIT=0 docker build --network host --quiet \
  --build-arg "EXTRA_CA_CERTS=$("$root/bin/node" "$root/hack/image/extra-ca.ts")" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  "${args[@]}" -t "$image" "$root" 2> >(grep -v -e 'DEPRECATED' -e 'BuildKit is currently disabled' -e 'environment-variable' -e '^ *$' >&2) >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$image")
log "built $image: $((size / 1024 / 1024)) MiB, in $((SECONDS - started)) s"
