# The front door: `make help` lists every target. Tools are pinned in hack/versions.env and
# installed into bin/ from a per-user cache, so nothing here relies on a hand-installed tool.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/bin:$(PATH)

CLUSTER_DIR ?= .cache/cluster
NODE_MODULES := node_modules/.installed
CHART := charts/retrospective
IMAGE ?= retrospective:$(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' $(CHART)/Chart.yaml)

.PHONY: help
help: ## List every target with one line each.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bin/node: hack/versions.env hack/tools.sh
	hack/tools.sh node
bin/kube-apiserver bin/kubectl &: hack/versions.env hack/tools.sh
	hack/tools.sh kube
bin/etcd: hack/versions.env hack/tools.sh
	hack/tools.sh etcd
bin/helm: hack/versions.env hack/tools.sh
	hack/tools.sh helm
bin/chromium: hack/tools.sh
	hack/tools.sh chromium
bin/jsonnet: hack/versions.env hack/tools.sh
	hack/tools.sh jsonnet
bin/prometheus bin/promtool &: hack/versions.env hack/tools.sh
	hack/tools.sh prometheus
bin/alertmanager bin/amtool &: hack/versions.env hack/tools.sh
	hack/tools.sh alertmanager
bin/crds: hack/versions.env hack/tools.sh
	hack/tools.sh crds
bin/kind: hack/versions.env hack/tools.sh
	hack/tools.sh kind
bin/bench-peers: hack/tools.sh $(wildcard bench/peers/*)
	hack/tools.sh bench_peers

.PHONY: tools
tools: bin/node bin/kube-apiserver bin/kubectl bin/etcd bin/helm bin/jsonnet bin/prometheus bin/alertmanager bin/crds bin/chromium bin/bench-peers ## Install the pinned tools make test needs into bin/ (cached per user; make -j4 tools builds them side by side; kind comes with test-kind).

$(NODE_MODULES): bin/node package.json package-lock.json $(wildcard */package.json)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: deps
deps: $(NODE_MODULES) ## Install npm dependencies with the pinned Node.

.PHONY: build
build: $(NODE_MODULES) ## Compile every workspace to dist/.
	npm run --silent build

.PHONY: lint
lint: $(NODE_MODULES) ## Lint and format-check everything (warnings are errors).
	npm run --silent lint

.PHONY: format
format: $(NODE_MODULES) ## Rewrite files with the formatter.
	npm run --silent format

.PHONY: typecheck
typecheck: $(NODE_MODULES) ## Type-check sources, tests and scripts.
	npm run --silent typecheck

.PHONY: generate
generate: bin/jsonnet $(NODE_MODULES) ## Render the mixin's alerts and dashboard into the chart, and the chart's README from values.yaml.
	node hack/generate.ts

.PHONY: verify
verify: bin/jsonnet bin/helm $(NODE_MODULES) ## Fail when a generated file drifts from its source, or the chart does not lint.
	node hack/generate.ts --check
	helm lint --strict $(CHART)

.PHONY: test
test: ## Run every test tier: unit, contract and e2e on a real control plane (steps: tools, build, tests).
	hack/steps.sh tools '$(MAKE) --no-print-directory tools' build '$(MAKE) --no-print-directory build' \
	  tests 'npm run --silent test'

.PHONY: kind-up
kind-up: ## A kind cluster with the chart, Traefik and the monitoring stack, all built here (KIND_IMAGES=upstream pulls).
	hack/steps.sh tools '$(MAKE) --no-print-directory tools bin/kind' build '$(MAKE) --no-print-directory build' \
	  Docker 'hack/docker.sh privileged' 'kind cluster' 'hack/docker.sh exec node hack/kind/up.ts'

.PHONY: kind-down
kind-down: bin/node bin/kind ## Delete the kind cluster of make kind-up.
	hack/docker.sh exec node hack/kind/up.ts down

.PHONY: test-kind
test-kind: tools build bin/kind ## Run the Docker tier: the image, then the chart on a kind cluster (run by .ci/run).
	hack/docker.sh privileged
	hack/docker.sh exec npm run --silent test:kind

.PHONY: test-unit
test-unit: $(NODE_MODULES) ## Run only the unit tests (no control plane).
	npm run --silent test:unit

.PHONY: run
run: build ## Run the service on :9090 (metrics :8080) with the in-memory lock; the seed's curl lines work.
	PORT=$${PORT:-9090} node standalone/dist/main.js

.PHONY: dev
dev: build cluster-up ## Local control plane + two api-servers (:9090, :9091) + two controllers on the Lease backend.
	hack/dev.sh $(CLUSTER_DIR)

.PHONY: bench
bench: tools build ## The seven benchmarks of docs/benchmarks.md, each as a ratio to a floor or peer measured in the same run (about 9 min).
	node bench/bench.ts

.PHONY: image
image: bin/node ## Build the image (retrospective:<appVersion>) with no registry (IMAGE_BASE=upstream builds on node:24 and distroless instead).
	hack/docker.sh exec hack/image/build.sh $(IMAGE)

.PHONY: docker-down
docker-down: ## Stop the project-owned Docker daemon, if one runs (a Docker of your own is left alone).
	hack/docker.sh down

.PHONY: cluster-up
cluster-up: bin/node bin/kube-apiserver bin/kubectl bin/etcd ## Start etcd + kube-apiserver on loopback (idempotent); kubeconfig in .cache/cluster/.
	node hack/cluster/cli.ts up $(CLUSTER_DIR)

.PHONY: cluster-down
cluster-down: bin/node ## Stop the local control plane and delete its data.
	node hack/cluster/cli.ts down $(CLUSTER_DIR)

.PHONY: clean
clean: ## Remove build output and bin/ links (the tool cache stays).
	rm -rf bin dist */dist *.tsbuildinfo */*.tsbuildinfo node_modules
