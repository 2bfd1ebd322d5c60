# Herald. The two commands a newcomer needs: `make lab` and `make test`.
# Both install what they need (Debian packages, a Kubernetes build cached in
# .cache/) on first use. The lab and most tests need root: network
# namespaces, raw sockets and routers.

SHELL := /bin/bash
GO ?= go
BIN := bin
KUBE_VERSION ?= v1.36.3
export KUBE_VERSION
export HERALD_KUBE_BIN ?= $(CURDIR)/.cache/kube/$(KUBE_VERSION)/bin

UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/e2e')
# Unit packages tested without the race detector: internal/images spends
# its time compressing image layers, which -race makes 11 times slower
# (27 s to 303 s here) for code that starts no goroutines.
NORACE_PKGS = $(filter %/internal/images,$(UNIT_PKGS))
E2E_PKGS = $(shell $(GO) list ./e2e/...)

# Images: names and tag come from charts/herald (values.yaml, appVersion);
# TAG and REGISTRY override them.
TAG ?=
REGISTRY ?=
PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_FLAGS = $(if $(TAG),--tag $(TAG)) $(if $(REGISTRY),--registry $(REGISTRY))

.PHONY: all build generate verify fmt vet lint test test-unit test-e2e fuzz lab lab-real lab-down bench deps kube root clean images push manifest

all: build

## build: the controller, the speaker, the MetalLB importer and the lab CLI into bin/
build:
	$(GO) build -o $(BIN)/herald-controller ./controller
	$(GO) build -o $(BIN)/herald-speaker ./speaker
	$(GO) build -o $(BIN)/herald-migrate ./cmd/herald-migrate
	$(GO) build -o $(BIN)/herald-lab ./cmd/herald-lab

## generate: deepcopy code and CRD manifests from api/ (controller-gen, pinned in go.mod), also into the chart
generate:
	$(GO) tool controller-gen object paths=./api/...
	$(GO) tool controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd
	rm -f charts/herald/crds/*.yaml && cp config/crd/herald.dev_*.yaml charts/herald/crds/

## images: herald-controller and herald-speaker as OCI archives in dist/images (no Docker; TAG, REGISTRY, PLATFORMS)
images:
	$(GO) run ./cmd/herald-dist images --dir dist/images --platforms $(PLATFORMS) $(IMAGE_FLAGS)

## push: push the images to REGISTRY (make push REGISTRY=registry.example.com/herald [TAG=...])
push:
	@if [ -z "$(REGISTRY)" ]; then echo "usage: make push REGISTRY=registry.example.com/herald [TAG=v...]" >&2; exit 1; fi
	$(GO) run ./cmd/herald-dist push --dir dist/images $(IMAGE_FLAGS)

## manifest: the single manifest dist/herald.yaml (config/default rendered) for kubectl apply -f
manifest:
	$(GO) run ./cmd/herald-dist manifest -o dist/herald.yaml

## verify: generated files are current, go.mod files tidy, gofmt, go vet and golangci-lint clean
verify:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  $(GO) tool controller-gen crd paths=./api/... output:crd:artifacts:config=$$tmp/crd && \
	  cp api/v1beta1/zz_generated.deepcopy.go $$tmp/deepcopy.go && \
	  $(GO) tool controller-gen object paths=./api/... && \
	  if ! diff -r -x kustomization.yaml $$tmp/crd config/crd >/dev/null || ! diff -r $$tmp/crd charts/herald/crds >/dev/null || ! diff -q $$tmp/deepcopy.go api/v1beta1/zz_generated.deepcopy.go >/dev/null; then \
	    cp $$tmp/deepcopy.go api/v1beta1/zz_generated.deepcopy.go; \
	    echo "generated files are stale: run make generate" >&2; exit 1; fi
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed (make fmt):" >&2; echo "$$out" >&2; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy" >&2; exit 1; }
	@$(GO) -C tools mod tidy -diff || { echo "tools/go.mod or tools/go.sum is not tidy: run go mod tidy in tools/" >&2; exit 1; }
	@$(MAKE) --no-print-directory vet lint

## fmt: gofmt every Go file in the repository
fmt:
	gofmt -w $$(git ls-files '*.go')

## vet: go vet
vet:
	$(GO) vet ./...

## lint: golangci-lint with .golangci.yml; the linter is pinned in tools/go.mod, apart from the product's dependencies
lint:
	$(GO) tool -modfile=tools/go.mod golangci-lint run ./...

## test: everything (unit, real API server, lab end-to-end, the images installed on real kubelet nodes); needs root
test: root deps kube verify build images test-unit test-e2e

# Unit tests run with the race detector; then each fuzz target for
# FUZZ_SHORT (its seed corpus also runs with the unit tests).
test-unit:
	$(GO) test -race -count=1 -timeout 30m $(filter-out $(NORACE_PKGS),$(UNIT_PKGS))
	$(GO) test -count=1 -timeout 30m $(NORACE_PKGS)
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_SHORT)

# Go fuzz targets for what parses untrusted input, as package:Target.
FUZZ_TARGETS = ./speaker/arp:FuzzReply ./speaker/ndp:FuzzReply \
	./internal/config:FuzzParseRange ./internal/config:FuzzCommunity \
	./internal/k8s:FuzzServiceAnnotations
FUZZ_SHORT ?= 100000x
FUZZ_TIME ?= 10m

## fuzz: every fuzz target for FUZZ_TIME (10m each); a failing input lands in the package's testdata/fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} $${t##*:} for $(FUZZ_TIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZ_TIME) $${t%%:*}; \
	done

# End-to-end packages run one at a time: each brings up its own lab. The
# install suite (e2e/install) loads the images of make images.
test-e2e:
	HERALD_IMAGES=$(CURDIR)/dist/images $(GO) test -count=1 -p 1 -timeout 40m $(E2E_PKGS)

## lab: build everything, bring the lab up with an example, keep it running until Ctrl-C
lab: root deps kube build
	$(BIN)/herald-lab up

## lab-real: the same demo on real kubelet nodes (containerd, runc), Herald installed from its chart and images
lab-real: root deps kube build
	$(MAKE) images PLATFORMS=linux/$$($(GO) env GOARCH)
	$(BIN)/herald-lab up --kubelet

## lab-down: remove what a crashed lab left behind
lab-down: root
	$(GO) run ./cmd/herald-lab down

## bench: the benchmarks behind docs/benchmarks.md
bench: root deps kube build
	$(GO) test -run '^$$' -bench . -count 6 ./controller/allocator
	$(GO) test -run '^$$' -bench MembershipChange -benchtime 20x -count 5 ./speaker/reconcile
	HERALD_MEASURE=1 $(GO) test -count=1 -timeout 60m -run '^TestSpeakerMemory$$' -v ./e2e/l2 2>&1 | grep -E 'MEASURE|ok|FAIL'
	$(GO) test -run '^$$' -bench 'StartToReady|CreateServices' -benchtime 1x ./internal/testenv
	$(GO) test -run '^$$' -bench 'LabUp|PodToReady' -benchtime 3x ./e2e/lab
	HERALD_BENCH_SCALE=10000 HERALD_BENCH_RUNS=3 $(GO) test -count=1 -timeout 90m -run '^TestScale$$' -v ./controller 2>&1 | grep -E 'MEASURE|ok|FAIL'
	-HERALD_BENCH_MEMBERS=30,100,300,500 HERALD_BENCH_RUNS=3 HERALD_BENCH_STEADY=30s HERALD_BENCH_LOAD=30s $(GO) test -count=1 -timeout 120m -run '^TestScale$$' -v ./speaker/members 2>&1 | grep -E 'MEASURE|members see|ok|FAIL'
	-HERALD_BENCH_TIMINGS=probe=100ms,timeout=50ms,gossip=50ms HERALD_BENCH_MEMBERS=100,300 HERALD_BENCH_STEADY=30s HERALD_BENCH_LOAD=30s $(GO) test -count=1 -timeout 60m -run '^TestScale$$' -v ./speaker/members 2>&1 | grep -E 'MEASURE|members see|ok|FAIL'

deps:
	@./hack/install-deps.sh

## kube: the Kubernetes binaries (cached in .cache/kube)
kube:
	@./hack/build-kube.sh

root:
	@if [ "$$(id -u)" != 0 ]; then echo "this target needs root (network namespaces, raw sockets, routers): run it as root" >&2; exit 1; fi

clean:
	rm -rf $(BIN) dist
