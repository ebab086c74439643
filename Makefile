# ringnet — the front door. `make help` lists the targets.
GO       ?= go
BIN      := bin
GOFLAGS  ?=
# Root tests make network namespaces, XDP programs and AF_XDP sockets.
TESTFLAGS ?= -count=1 -timeout 30m
STATICCHECK_VERSION := v0.8.2

.PHONY: help deps build test bench bench-micro bench-e2e demo lint generate clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install missing Debian packages (apt-get) and Go modules
	@scripts/deps.sh

build: ## build ringnetd, ringnet (CLI) and the CNI plugin (bin/cni/ringnet)
	@echo "build: $(BIN)/ringnetd $(BIN)/ringnet $(BIN)/cni/ringnet"
	@$(GO) build -o $(BIN)/ ./cmd/ringnetd ./cmd/ringnet
	@$(GO) build -o $(BIN)/cni/ringnet ./cmd/ringnet-cni

test: deps ## run every test, root tests included (needs root)
	@if [ "$$(id -u)" -ne 0 ]; then echo "test: not root: tests needing namespaces, XDP and AF_XDP will be skipped" >&2; fi
	@echo "test: go test ./... (unit, netns end-to-end, benchmark smoke)"
	$(GO) test $(TESTFLAGS) ./...
	@echo "test: race detector on the fast path and tables"
	$(GO) test -race $(TESTFLAGS) ./fastpath/... ./tables/... ./slowpath/...

bench: bench-micro bench-e2e bench-crossnode ## run all benchmarks and print the figures

bench-micro: deps ## go test -bench with -benchmem (0 allocs/op expected on per-packet paths)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./fastpath/... ./tables/...

bench-e2e: deps ## pod-to-pod pps and latency: kernel routing, asavie/xdp, ringnetd (needs root)
	$(GO) run ./bench/e2e --runs 5 --markdown bench-e2e.md

bench-crossnode: deps ## pod to pod across two nodes (pps, latency, TCP): kernel host-gw/VXLAN vs ringnet direct/VXLAN/IPIP (needs root)
	$(GO) run ./bench/crossnode --runs 3 --markdown bench-crossnode.md

.PHONY: bench-crossnode

e2e: deps ## CNI end to end: cnitool (all spec versions), portmap chain, podman and containerd+crictl pods on ringnet (needs root)
	$(GO) test $(TESTFLAGS) -v -run 'TestCnitool|TestPortmapChain|TestPodman|TestContainerd' ./cni/

cni-bench: deps ## CNI ADD/DEL latency p50/p99 over 100 pods: ringnet vs Debian bridge+host-local (needs root)
	$(GO) run ./bench/cni --pods 100 --runs 3 --markdown bench-cni.md

.PHONY: e2e cni-bench

demo: deps ## the default cluster in namespaces: 2 ringnet nodes + a Flannel node, CNI pods, traffic, summary
	$(GO) run ./bench/demo

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

generate: ## regenerate generated code (none yet: the XDP program is written in Go asm)
	$(GO) generate ./...

clean: ## remove build output
	rm -rf $(BIN) bench-e2e.md bench-cni.md
