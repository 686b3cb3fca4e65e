# rollout-guard. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN_DIR      ?= $(CURDIR)/.cache/bin
DEV_DIR      ?= $(CURDIR)/.dev
KUBECTL      ?= $(BIN_DIR)/kubectl
GO_TEST_E2E  ?= -timeout 40m -count=1
# Pinned tool versions.
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0

# What an image and a release are stamped with. The same commit gives the same VERSION, REVISION and creation time,
# so `make image` twice gives the same digest.
VERSION           ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION          ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
BUILD_DATE        := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
PLATFORMS         ?= linux/amd64,linux/arm64
IMAGE_LAYOUT      ?= $(CURDIR)/.cache/image
SOURCE_URL        ?= https://github.com/rollout-guard/rollout-guard
LDFLAGS           := -s -w -X main.version=$(VERSION) -X main.commit=$(REVISION) -X main.date=$(BUILD_DATE)
# NODE=real runs the demo on a real node (root, Linux) with the chart installed from the locally built image.
NODE              ?= kwok

export ROLLOUT_GUARD_BIN_DIR := $(BIN_DIR)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/rollout-guard (static, as it would ship in an image) and the kubectl plugin link bin/kubectl-rollout_guard
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/rollout-guard ./cmd/rollout-guard
	ln -sf rollout-guard bin/kubectl-rollout_guard

.PHONY: image
image: ## Build rollout-guard's image without Docker (without check's Helm and kustomize rendering: tag norender): an OCI index for PLATFORMS in .cache/image; prints its digest
	bash test/tools/build.sh "$(BIN_DIR)" imagebuild >/dev/null
	@$(BIN_DIR)/imagebuild build --dir . --package ./cmd/rollout-guard --name rollout-guard --platforms "$(PLATFORMS)" \
		--ldflags "$(LDFLAGS)" --tags norender --user 65532:65532 --created $(SOURCE_DATE_EPOCH) --layout "$(IMAGE_LAYOUT)" \
		--label org.opencontainers.image.title=rollout-guard --label org.opencontainers.image.licenses=Apache-2.0 \
		--label org.opencontainers.image.source=$(SOURCE_URL) --label org.opencontainers.image.version=$(VERSION) \
		--label org.opencontainers.image.revision=$(REVISION) --label org.opencontainers.image.created=$(BUILD_DATE)

.PHONY: image-reproducible
image-reproducible: ## Build the image twice, into two layouts, and require the same digest
	@a=$$($(MAKE) -s --no-print-directory image IMAGE_LAYOUT=$(CURDIR)/.cache/image-a | tail -1); \
	b=$$($(MAKE) -s --no-print-directory image IMAGE_LAYOUT=$(CURDIR)/.cache/image-b | tail -1); \
	if [ "$$a" != "$$b" ] || [ -z "$$a" ]; then echo "image-reproducible: two builds of one tree differ: $$a vs $$b"; exit 1; fi; \
	echo "image-reproducible: both builds are $$a"

.PHONY: image-push
image-push: image ## Push the image as REGISTRY/rollout-guard:VERSION (REGISTRY=host[:port]/path); prints repo@digest
	@test -n "$(REGISTRY)" || { echo "image-push: set REGISTRY=host[:port]/path, e.g. make image-push REGISTRY=registry.example.com/platform"; exit 2; }
	@$(BIN_DIR)/imagebuild push --layout "$(IMAGE_LAYOUT)" --digest-file "$(IMAGE_LAYOUT).digest" "$(REGISTRY)/rollout-guard:$(VERSION)"

.PHONY: release
release: ## Publish image and chart with one VERSION (x.y.z): REGISTRY/rollout-guard, oci://REGISTRY/charts/rollout-guard
	@[[ "$(VERSION)" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "release: VERSION=$(VERSION) is not a semantic version (make release VERSION=1.2.3 REGISTRY=...)"; exit 2; }
	$(MAKE) image-push VERSION=$(VERSION)
	go run ./test/cmd/release --chart charts/rollout-guard --version $(VERSION) --registry "$(REGISTRY)" \
		--digest "$$(cat "$(IMAGE_LAYOUT).digest")" --helm "$(BIN_DIR)/helm" --out .cache/release

.PHONY: cluster-bins
cluster-bins: ## Build the pinned local cluster (control plane, kwok, helm, real node, registry, imagebuild, Prometheus) into .cache/bin
	bash test/tools/build.sh "$(BIN_DIR)"

.PHONY: node-deps
node-deps: ## Install what the real node needs from Debian packages when missing (runc, iptables, nftables, conntrack, iproute2)
	@missing=""; for t in runc iptables nft conntrack ip; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "node-deps: missing:$$missing; the real node needs root to install and run them (apt-get install runc iptables nftables conntrack iproute2)"; exit 1; fi; \
		echo "node-deps: installing runc iptables nftables conntrack iproute2"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc iptables nftables conntrack iproute2 >/dev/null; \
	fi

.PHONY: test-deps
test-deps: ## Install what the unit tests need from Debian packages when missing (xmllint validates JUnit XML)
	@if ! command -v xmllint >/dev/null; then \
		if [ "$$(id -u)" != 0 ]; then echo "test-deps: missing xmllint (apt-get install libxml2-utils)"; exit 1; fi; \
		echo "test-deps: installing libxml2-utils"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-utils >/dev/null; \
	fi

.PHONY: fmt-check
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: ## Regenerate the CRDs (charts/rollout-guard/files/crds) and deepcopy code from policies/v1alpha1
	go run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) object paths=./policies/v1alpha1/...
	go run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION) crd paths=./policies/v1alpha1/... output:crd:artifacts:config=charts/rollout-guard/files/crds

.PHONY: lint
lint: fmt-check ## gofmt, go vet, and golangci-lint (installed from the module proxy when it can be)
	go vet ./...
	@if GOBIN=$(CURDIR)/.cache/tools go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) 2>/dev/null; then \
		$(CURDIR)/.cache/tools/golangci-lint run ./...; \
	else echo "golangci-lint $(GOLANGCI_LINT_VERSION) could not be installed; skipped (gofmt and go vet ran)"; fi

.PHONY: test-unit
test-unit: test-deps ## Unit tests: pure logic (mutation, policies, rollback decisions), no cluster
	go test -count=1 $$(go list ./... | grep -v /test/)
	# the server image's build (make image): check without Helm and kustomize rendering
	go test -count=1 -tags norender ./policies/check/

.PHONY: test-e2e
test-e2e: cluster-bins node-deps ## End-to-end tests: the local control plane with kwok, then with the real node (root)
	go test $(GO_TEST_E2E) $$(go list ./test/... | grep -v /test/realnode)
	$(MAKE) test-realnode

.PHONY: test-realnode
test-realnode: cluster-bins node-deps ## Real-node tests only: the chart as pods, real images and probes (root, Linux)
	# one real node per machine: its packages run one after another
	go test $(GO_TEST_E2E) -p 1 ./test/realnode/...

.PHONY: test
test: fmt-check ## Everything CI runs: format and vet checks, unit tests, image reproducibility, e2e tests (kwok, then real node)
	go vet ./...
	$(MAKE) test-unit
	$(MAKE) image-reproducible
	$(MAKE) test-e2e

.PHONY: dev-up
dev-up: build cluster-bins ## Start the local cluster with rollout-guard; kubeconfig at .dev/kubeconfig (NODE=real: real node + chart)
	go build -o bin/localcluster ./test/cmd/localcluster
ifeq ($(NODE),real)
	$(MAKE) node-deps
	bin/localcluster up --dir "$(DEV_DIR)" --bin-dir "$(BIN_DIR)" --real-node $(foreach v,$(CHART_VALUES),--set $(v))
else
	bin/localcluster up --dir "$(DEV_DIR)" --bin-dir "$(BIN_DIR)" --rollout-guard bin/rollout-guard $(if $(CONFIG),--config $(CONFIG))
endif

.PHONY: dev-down
dev-down: ## Stop everything dev-up started
	@if [ -x bin/localcluster ]; then bin/localcluster down --dir "$(DEV_DIR)"; else go run ./test/cmd/localcluster down --dir "$(DEV_DIR)"; fi

.PHONY: demo
demo: ## Play the seeds' story on a fresh local cluster with kubectl (NODE=real: real containers, root; KEEP=1 leaves it running)
	$(MAKE) dev-down
	$(MAKE) dev-up CONFIG=test/demo/config.yaml CHART_VALUES="config.rollback.imagePullGracePeriod=10s analysis.builtIns.interval=5s analysis.builtIns.bakeTime=20s"
	KUBECONFIG="$(DEV_DIR)/kubeconfig" KUBECTL="$(KUBECTL)" NODE=$(NODE) bash test/demo/demo.sh || { status=$$?; [ -n "$(KEEP)" ] || $(MAKE) dev-down; exit $$status; }
	@if [ -z "$(KEEP)" ]; then $(MAKE) dev-down; else echo "KEEP=1: cluster left running; export KUBECONFIG=$(DEV_DIR)/kubeconfig; make dev-down stops it"; fi

.PHONY: bench
bench: cluster-bins ## Benchmarks (handlers, policy evaluation, an audit of 2,000 Deployments) and the watcher scale test (memory, analysis, audit CPU and admission latency); results in .cache/bench.txt, .cache/scale.txt
	mkdir -p .cache
	go test -run '^$$' -bench . -benchmem -cpu 1 -count 3 ./policies/... ./webhook/... ./audit/... | tee .cache/bench.txt
	go run ./test/scale -deployments $(or $(DEPLOYMENTS),2000) -bin-dir "$(BIN_DIR)" -out .cache/scale.txt -heap-profile .cache/watcher-heap.pb.gz

.PHONY: clean
clean: ## Remove build outputs (keeps the cluster binary cache)
	rm -rf bin .dev
