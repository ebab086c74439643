// Command policy is ringnet's NetworkPolicy benchmark: 64-byte UDP packets
// per second from a sender pod on node n1 to a receiver pod on node n2
// while N rules apply to the receiver, for N = 10, 100, 1 000 and 10 000,
// through three datapaths measured in one run:
//
//	(r) ringnet: ringnetd on both nodes, the rules as NetworkPolicies in
//	    its cluster file (N/10 policies of 10 ingress rules each)
//	(k) iptables: Linux routing (host-gw, as bench/crossnode's (a)), the
//	    same rules in n2's FORWARD chain, iptables on nf_tables
//	(l) iptables-legacy: as (k), on the x_tables backend
//
// and two loads:
//
//   - one flow: one UDP flow, which the receiver has answered once, so that
//     ringnet's connection tracking and the kernel's ESTABLISHED rule take
//     every packet: the steady state of a connection;
//   - new flows: every packet a new flow (trafgen writes random source and
//     destination ports, 2^24 tuples), so that ringnet looks every packet
//     up in its verdict table and tracks it, and iptables walks all N rules
//     to the one that allows it.
//
// Run it as root from the repository:
//
//	go run ./bench/policy [--runs 3] [--rules 10,100,1000,10000] [--window 5s]
//	                      [--warmup 1s] [--quiet-wait 1m] [--variants r,k,l]
//	                      [--ringnetd-flags "..."] [--quick] [--json FILE] [--markdown FILE]
//
// It builds ringnetd and the CNI plugin once, then one topology per
// variant (testbed.Bed), kept for the whole run. A round goes through the
// variants in turn, and within a variant through every N (upwards in odd
// rounds, downwards in even ones): it installs the N rules (iptables-restore
// in n2, or a new cluster file and SIGHUP to both ringnetds), proves that
// they are enforced (datagrams to a port no rule allows must be dropped,
// by iptables' DROP rule or ringnetd's policy_denied), then measures both
// loads, each proved by the path's counters: for iptables which rule took
// the packets (iptables -L -v -x), for ringnet that nothing was denied and
// that n2 tracked a new connection for each packet of the second load
// (its flow log's counts) and none for the first.
//
// The machine may be shared: before each load the benchmark waits
// (--quiet-wait) for other work to leave the CPUs alone, and leaves out of
// the medians what other work disturbed (cpustat.Watch). Everything it
// creates is removed on exit, on error and on SIGINT/SIGTERM; a later run
// sweeps what a run killed with SIGKILL left.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
)

// options are the benchmark's settings; flags fill them.
type options struct {
	Runs     int
	Rules    []int // rule counts, in increasing order
	Warmup   time.Duration
	Window   time.Duration
	Quiet    time.Duration // how long to wait for a quiet machine before a load
	Variants []string      // ids, in order
	Ringnetd []string      // more ringnetd flags for (r)
	JSON     string
	Markdown string
	Command  string // how the run was invoked, for the reports

	bins ringnode.Binaries // prebuilt (the tests'); built by bench if empty
}

func main() {
	o, err := parseFlags(os.Args[1:])
	program.Flags("policy", err)
	ctx, stop := program.Context()
	defer stop()
	rep, err := bench(ctx, o, os.Stderr)
	program.Finish(ctx, "policy", rep, err, o.JSON, o.Markdown)
}

func parseFlags(args []string) (options, error) {
	vs := make([]program.Variant, len(variants))
	for i, v := range variants {
		vs[i] = program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc}
	}
	fs := program.NewFlagSet("./bench/policy", "Measures pod-to-pod 64-byte UDP pps between two nodes while N rules apply to the receiver, one flow and a new flow every packet,", vs)
	lf := program.AddLoadFlags(fs, 3, "rounds (each: every variant, every rule count)", 5*time.Second, "measurement window of each load", "load")
	rules := fs.String("rules", "10,100,1000,10000", "comma-separated rule counts, multiples of 10; ratios are to the smallest")
	list := fs.String("variants", "r,k,l", "comma-separated subset of r,k,l")
	daemonFlags := fs.String("ringnetd-flags", "", "more ringnetd flags for (r), space-separated, e.g. \"--cpus 1\"")
	if err := lf.Parse(args, nil); err != nil {
		return options{}, err
	}
	o := options{Runs: *lf.Runs, Window: *lf.Window, Warmup: *lf.Warmup, Quiet: *lf.Quiet, JSON: *lf.JSON, Markdown: *lf.Markdown,
		Ringnetd: strings.Fields(*daemonFlags), Command: program.Command("./bench/policy", args)}
	var err error
	if o.Rules, err = parseRules(*rules); err != nil {
		return o, err
	}
	o.Variants, err = program.ParseVariants(*list, vs)
	return o, err
}

// maxRules bounds --rules: the rules' other peers are addresses of
// 172.16.0.0/12, one each.
const maxRules = 1 << 20

// parseRules reads --rules: rule counts, each a multiple of
// rulesPerPolicy, sorted and without repeats.
func parseRules(list string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < rulesPerPolicy || n%rulesPerPolicy != 0 || n > maxRules {
			return nil, fmt.Errorf("--rules: %q is not a multiple of %d from %d to %d", f, rulesPerPolicy, rulesPerPolicy, maxRules)
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return slices.Compact(ns), nil
}

// runner is one benchmark run's processes and log.
type runner struct {
	o     options
	dir   string      // temporary folder: binaries, cluster files, trafgen configs
	procs child.Group // trafgen
	logw  io.Writer
	watch cpustat.Watch // what runs in every setup's namespaces is the benchmark's
}

// bench runs the whole benchmark and returns its report. A (variant, N)
// that fails is recorded in the report (and makes Report.Failed true); an
// error is returned only when the benchmark cannot go on (build,
// topology, interruption), together with what was measured so far.
func bench(ctx context.Context, o options, logw io.Writer) (rep *Report, err error) {
	if err := child.Preflight("network namespaces, XDP, AF_XDP, iptables", "ip", "ethtool", "ping", "trafgen", "taskset",
		"iptables", "iptables-restore", "iptables-legacy", "iptables-legacy-restore"); err != nil {
		return nil, err
	}
	if _, err := child.ModuleRoot(ctx); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ringnet-policy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bins := o.bins
	if bins.Ringnetd == "" && slices.Contains(o.Variants, "r") {
		fmt.Fprintf(logw, "build ringnetd and the CNI plugin\n")
		if bins, err = ringnode.Build(filepath.Join(dir, "bin")); err != nil {
			return nil, err
		}
	}
	if err := topo.Sweep(topoPrefix); err != nil {
		fmt.Fprintf(logw, "sweep what earlier runs left: %v\n", err)
	}

	r := &runner{o: o, dir: dir, logw: logw, watch: cpustat.Watch{Wait: o.Quiet, Log: logw}}
	defer r.procs.KillAll()
	var setups []*setup
	defer func() {
		for i := len(setups) - 1; i >= 0; i-- {
			if cerr := setups[i].Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up (%s): %w", setups[i].v.ID, cerr))
			}
		}
	}()
	rep = newReport(o)
	for _, id := range o.Variants {
		v, _ := variantByID(id)
		s, err := newSetup(ctx, r, v, bins)
		if s != nil {
			setups = append(setups, s)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, child.ErrStopped
			}
			return nil, fmt.Errorf("build (%s) %s: %w", v.ID, v.Name, err)
		}
		if err := r.watch.Own(s.Namespaces()...); err != nil {
			return nil, err
		}
		rep.flows(s.flows)
		fmt.Fprintf(logw, "(%s) %-15s pod %v on n1 -> pod %v on n2 (topology %s)\n", v.ID, v.Name, s.Send.IP, s.Recv.IP, s.Topo.ID)
	}

	for round := 1; round <= o.Runs; round++ {
		counts := slices.Clone(o.Rules)
		if round%2 == 0 {
			slices.Reverse(counts)
		}
		for _, s := range setups {
			for _, n := range counts {
				res := r.unit(ctx, s, n)
				if ctx.Err() != nil {
					// The interrupted unit is left out: it measured nothing whole.
					rep.summarise()
					return rep, child.ErrStopped
				}
				res.Round = round
				rep.add(s.v, n, res)
				fmt.Fprint(logw, res.lines(s.v, n))
			}
		}
	}
	rep.summarise()
	return rep, nil
}
