# rollout-guard. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN_DIR      ?= $(CURDIR)/.cache/bin
DEV_DIR      ?= $(CURDIR)/.dev
KUBECTL      ?= $(BIN_DIR)/kubectl
GO_TEST_E2E  ?= -timeout 40m -count=1
# Pinned tool versions.
GOLANGCI_LINT_VERSION ?= v2.15.0

export ROLLOUT_GUARD_BIN_DIR := $(BIN_DIR)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/rollout-guard (static, as it would ship in an image)
	CGO_ENABLED=0 go build -trimpath -o bin/rollout-guard ./cmd/rollout-guard

.PHONY: cluster-bins
cluster-bins: ## Build the pinned local control plane (etcd, kube-*, kubectl, kwok, helm) into .cache/bin
	bash test/tools/build.sh "$(BIN_DIR)"

.PHONY: fmt-check
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: lint
lint: fmt-check ## gofmt, go vet, and golangci-lint (installed from the module proxy when it can be)
	go vet ./...
	@if GOBIN=$(CURDIR)/.cache/tools go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) 2>/dev/null; then \
		$(CURDIR)/.cache/tools/golangci-lint run ./...; \
	else echo "golangci-lint $(GOLANGCI_LINT_VERSION) could not be installed; skipped (gofmt and go vet ran)"; fi

.PHONY: test-unit
test-unit: ## Unit tests: pure logic (mutation, policies, rollback decisions), no cluster
	go test -count=1 $$(go list ./... | grep -v /test/)

.PHONY: test-e2e
test-e2e: cluster-bins ## End-to-end tests against a real local control plane, with the real kubectl
	go test $(GO_TEST_E2E) ./test/...

.PHONY: test
test: fmt-check ## Everything CI runs: format and vet checks, unit tests, e2e tests on the local cluster
	go vet ./...
	$(MAKE) test-unit
	$(MAKE) test-e2e

.PHONY: dev-up
dev-up: build cluster-bins ## Start the local cluster with rollout-guard registered; kubeconfig at .dev/kubeconfig
	go build -o bin/localcluster ./test/cmd/localcluster
	bin/localcluster up --dir "$(DEV_DIR)" --bin-dir "$(BIN_DIR)" --rollout-guard bin/rollout-guard $(if $(CONFIG),--config $(CONFIG))

.PHONY: dev-down
dev-down: ## Stop everything dev-up started
	@if [ -x bin/localcluster ]; then bin/localcluster down --dir "$(DEV_DIR)"; else go run ./test/cmd/localcluster down --dir "$(DEV_DIR)"; fi

.PHONY: demo
demo: ## Play the seeds' story on a fresh local cluster with kubectl (KEEP=1 leaves it running)
	$(MAKE) dev-down
	$(MAKE) dev-up CONFIG=test/demo/config.yaml
	KUBECONFIG="$(DEV_DIR)/kubeconfig" KUBECTL="$(KUBECTL)" bash test/demo/demo.sh || { status=$$?; [ -n "$(KEEP)" ] || $(MAKE) dev-down; exit $$status; }
	@if [ -z "$(KEEP)" ]; then $(MAKE) dev-down; else echo "KEEP=1: cluster left running; export KUBECONFIG=$(DEV_DIR)/kubeconfig; make dev-down stops it"; fi

.PHONY: bench
bench: cluster-bins ## Benchmarks (handlers, policy evaluation) and the watcher scale test; results in .cache/bench.txt, .cache/scale.txt
	mkdir -p .cache
	go test -run '^$$' -bench . -benchmem -cpu 1 -count 3 ./policies/... ./webhook/... | tee .cache/bench.txt
	go run ./test/scale -deployments $(or $(DEPLOYMENTS),2000) -bin-dir "$(BIN_DIR)" -out .cache/scale.txt -heap-profile .cache/watcher-heap.pb.gz

.PHONY: clean
clean: ## Remove build outputs (keeps the cluster binary cache)
	rm -rf bin .dev
