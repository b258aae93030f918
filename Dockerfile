# One image, three commands: `api-server/dist/main.js` and `controller/dist/main.js` (what the chart
# runs), and `standalone/dist/main.js`, both in one process on the memory store (the default).
#
# The bases are build arguments. The defaults are upstream images for those who can pull;
# `make image` builds both from the pinned Node and Debian packages instead (hack/image/bases.sh),
# with the same layout, so this file works unchanged with either and needs no shell at any stage.
ARG BUILD_IMAGE=docker.io/library/node:24-bookworm-slim
ARG BASE_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
ENV NODE_ENV=development npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# Extra CA certificates (PEM text) for a TLS-intercepting proxy between the build and the npm
# registry; `make image` passes the build host's NODE_EXTRA_CA_CERTS. Build stage only.
ARG EXTRA_CA_CERTS=""
RUN ["/usr/local/bin/node", "-e", "require('fs').writeFileSync('/tmp/extra-ca.pem', process.env.EXTRA_CA_CERTS)"]
ENV NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem
# Dependencies first, so a source change reuses this layer.
COPY package.json package-lock.json ./
COPY lock/package.json lock/
COPY runtime/package.json runtime/
COPY controller/package.json controller/
COPY api-server/package.json api-server/
COPY client/package.json client/
COPY cli/package.json cli/
COPY standalone/package.json standalone/
RUN ["/usr/local/bin/node", "/usr/local/lib/node_modules/npm/bin/npm-cli.js", "ci", "--ignore-scripts", "--loglevel=error"]
COPY tsconfig.base.json tsconfig.build.json ./
COPY lock/ lock/
COPY runtime/ runtime/
COPY controller/ controller/
COPY api-server/ api-server/
# The client and CLI are workspaces of the same build; the image ships neither.
COPY client/ client/
COPY cli/ cli/
COPY standalone/ standalone/
RUN ["/usr/local/bin/node", "node_modules/typescript/bin/tsc", "--build", "tsconfig.build.json"]
RUN ["/usr/local/bin/node", "/usr/local/lib/node_modules/npm/bin/npm-cli.js", "prune", "--omit=dev", "--ignore-scripts", "--loglevel=error"]
COPY hack/image/prune-modules.ts hack/image/
RUN ["/usr/local/bin/node", "hack/image/prune-modules.ts", "node_modules"]

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="retrospective" \
      org.opencontainers.image.description="A Kubernetes-native lock service: one shared string, one editor at a time, stored in a Lease." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/lock/package.json lock/
COPY --from=build /src/lock/dist/ lock/dist/
COPY --from=build /src/runtime/package.json runtime/
COPY --from=build /src/runtime/dist/ runtime/dist/
COPY --from=build /src/controller/package.json controller/
COPY --from=build /src/controller/dist/ controller/dist/
COPY --from=build /src/api-server/package.json api-server/
COPY --from=build /src/api-server/dist/ api-server/dist/
COPY --from=build /src/api-server/public/ api-server/public/
COPY --from=build /src/standalone/package.json standalone/
COPY --from=build /src/standalone/dist/ standalone/dist/
# The numeric user of the distroless nonroot images; Kubernetes can verify runAsNonRoot with it.
USER 65532:65532
EXPOSE 9090 8080 8081
ENTRYPOINT ["/nodejs/bin/node"]
CMD ["standalone/dist/main.js"]
