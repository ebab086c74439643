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
	@# Static, as deploy/Containerfile builds it: the runtime execs it on
	@# every ADD, and a static binary starts faster and runs on any node.
	@CGO_ENABLED=0 $(GO) build -o $(BIN)/cni/ringnet ./cmd/ringnet-cni

test: deps ## run every test, root tests included (needs root)
	@if [ "$$(id -u)" -ne 0 ]; then echo "test: not root: tests needing namespaces, XDP and AF_XDP will be skipped" >&2; fi
	@echo "test: go test ./... (unit, netns end-to-end, benchmark smoke)"
	$(GO) test $(TESTFLAGS) ./...
	@echo "test: race detector on the fast path and tables"
	$(GO) test -race $(TESTFLAGS) ./fastpath/... ./tables/... ./slowpath/...

# Benchmarks. Each one writes its figures as JSON (micro: go test's output)
# into BENCHDIR, the run directory, then fills its own region of
# docs/benchmarks.md and its charts in docs/img with bench/report, even
# when a round failed; a partial run updates only its region. `make bench`
# runs them all into one run directory, then writes the summary with the
# total time. BENCHDIR=DIR picks the directory (default: a new one per
# make invocation under bench-runs/, which git ignores).
ifndef BENCHDIR
BENCHDIR := bench-runs/$(shell date -u +%Y%m%d-%H%M%S)
endif
REPORT      := $(GO) run ./bench/report --in $(BENCHDIR) --out docs
MICRO_FLAGS := -run '^$$' -bench . -benchmem -count 5
BENCHES     := bench-micro bench-e2e bench-crossnode cni-bench bench-policy bench-slowpath

# run-bench NAME COMMAND: run COMMAND, which writes $(BENCHDIR)/NAME.json,
# then fill NAME's region, and fail if either failed.
define run-bench
@mkdir -p $(BENCHDIR)
$(2); s=$$?; $(REPORT) --only $(1) || s=1; exit $$s
endef

bench: deps ## run every benchmark below into one run directory, then write docs/benchmarks.md + docs/img (about 50 min; needs root)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -k $(BENCHES) BENCHDIR=$(BENCHDIR); s=$$?; \
	$(REPORT) --only summary --elapsed $$(( $$(date +%s) - start ))s || s=1; \
	echo "bench: figures in $(BENCHDIR), docs/benchmarks.md and docs/img written; took $$(( ($$(date +%s) - start + 30) / 60 )) min"; \
	exit $$s

bench-micro: deps ## go test -bench with -benchmem, 5 runs (0 allocs/op expected on per-packet paths)
	@mkdir -p $(BENCHDIR)
	@{ echo "command: go test $(MICRO_FLAGS) ./fastpath/... ./tables/..."; $(GO) run ./bench/report --describe; } > $(BENCHDIR)/micro.txt
	@{ $(GO) test $(MICRO_FLAGS) ./fastpath/... ./tables/... 2>&1; echo $$? > $(BENCHDIR)/micro.rc; } | tee -a $(BENCHDIR)/micro.txt
	@s=$$(cat $(BENCHDIR)/micro.rc); $(REPORT) --only micro || s=1; exit $$s

bench-e2e: deps ## pod-to-pod pps and latency: kernel routing, asavie/xdp, ringnetd (needs root)
	$(call run-bench,e2e,$(GO) run ./bench/e2e --runs 5 --json $(BENCHDIR)/e2e.json)

bench-crossnode: deps ## pod to pod across two nodes (pps, latency, TCP): kernel host-gw/VXLAN vs ringnet direct/VXLAN/IPIP/ClusterIP (needs root)
	$(call run-bench,crossnode,$(GO) run ./bench/crossnode --runs 5 --json $(BENCHDIR)/crossnode.json)

bench-policy: deps ## NetworkPolicy cost, 10 to 10 000 rules: ringnet vs iptables (nf_tables, legacy) (needs root)
	$(call run-bench,policy,$(GO) run ./bench/policy --runs 3 --json $(BENCHDIR)/policy.json)

bench-slowpath: deps ## node to pod through the slow path (TCP both ways, latency) vs the kernel path; pod to pod under a 200k pps punt flood (needs root)
	$(call run-bench,slowpath,$(GO) run ./bench/slowpath --runs 3 --json $(BENCHDIR)/slowpath.json)

.PHONY: bench-crossnode bench-policy bench-slowpath

e2e: deps ## CNI end to end: cnitool (all spec versions), portmap chain, podman and containerd+crictl pods on ringnet, ringnetd in the DaemonSet's unprivileged container (needs root)
	$(GO) test $(TESTFLAGS) -v -run 'TestCnitool|TestPortmapChain|TestPodman|TestContainerd|TestDaemonSetContainer' ./cni/

cni-bench: deps ## CNI ADD/DEL latency p50/p99 over 100 pods: ringnet vs Debian bridge+host-local (needs root)
	$(call run-bench,cni,$(GO) run ./bench/cni --pods 100 --runs 3 --json $(BENCHDIR)/cni.json)

.PHONY: e2e cni-bench

demo: deps ## the default cluster in namespaces: 2 ringnet nodes + a Flannel node, CNI pods, traffic, summary
	$(GO) run ./bench/demo

# Fuzzing: every `func FuzzX` in a _test.go file, one target after another.
# FUZZ (a regexp) picks targets by name, FUZZFLAGS go to go test (e.g.
# -parallel 1). What a run finds that widens coverage lands in the Go cache
# ($(GO) env GOCACHE)/fuzz; FUZZKEEP=1 copies this run's new entries into the
# package's testdata/fuzz/<target>/, where go test replays them as seeds:
# review them with git status and commit the ones worth keeping. A crash
# stops the run; go test has already written its input to testdata/fuzz.
# FUZZMINTIME bounds the minimizing of each new input (go test's default,
# 60s, can eat a whole short run: FuzzTable finds new coverage with nearly
# every input and did 44 executions in 20s).
FUZZTIME    ?= 30s
FUZZMINTIME ?= 5s
FUZZ        ?= .
FUZZKEEP    ?= 0
FUZZFLAGS   ?=

fuzz: ## run every fuzz target for FUZZTIME each (default 30s; FUZZTIME=10m for long runs); stop at the first crash
	@if [ "$$(id -u)" -ne 0 ]; then echo "fuzz: not root: FuzzUplink (a BPF program and an AF_XDP socket) will fail" >&2; fi
	@cache=$$($(GO) env GOCACHE)/fuzz; stamp=$$(mktemp); trap 'rm -f $$stamp' EXIT; \
	targets=$$(grep -rHo --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*(' . | sed 's|^\./||; s|:func |:|; s|($$||' | \
		awk -F: -v re='$(FUZZ)' '$$2 ~ re' | sort); \
	if [ -z "$$targets" ]; then echo "fuzz: no fuzz target matches FUZZ=$(FUZZ)" >&2; exit 1; fi; \
	echo "fuzz: $$(echo "$$targets" | wc -l) targets, $(FUZZTIME) each"; \
	for t in $$targets; do \
		name=$${t#*:}; pkg=./$$(dirname $${t%%:*}); \
		corpus=$$cache/$$($(GO) list $$pkg)/$$name; \
		touch $$stamp; \
		echo "fuzz: $$name ($$pkg)"; \
		if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $(FUZZFLAGS) $$pkg; then \
			echo "fuzz: $$name failed; the failing input is in $$pkg/testdata/fuzz/$$name/ (replay: $(GO) test -run '^$$name\$$' $$pkg)" >&2; \
			exit 1; \
		fi; \
		new=$$(find $$corpus -type f -newer $$stamp 2>/dev/null); \
		n=$$(echo "$$new" | grep -c . || true); \
		if [ $$n -eq 0 ]; then \
			echo "fuzz: $$name: no new corpus entries"; \
		elif [ "$(FUZZKEEP)" = 1 ]; then \
			mkdir -p $$pkg/testdata/fuzz/$$name && cp -n $$new $$pkg/testdata/fuzz/$$name/; \
			echo "fuzz: $$name: $$n new corpus entries copied to $$pkg/testdata/fuzz/$$name/ (review, then commit or delete)"; \
		else \
			echo "fuzz: $$name: $$n new corpus entries, in the Go cache only: $$corpus (FUZZKEEP=1 copies them to testdata/fuzz)"; \
		fi; \
	done; \
	echo "fuzz: no crash"

.PHONY: fuzz

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

generate: ## regenerate generated code (none yet: the XDP program is written in Go asm)
	$(GO) generate ./...

clean: ## remove build output
	rm -rf $(BIN) bench-e2e.md bench-cni.md
