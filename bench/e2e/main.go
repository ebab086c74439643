// Command e2e is ringnet's end-to-end benchmark: 64-byte UDP packets per
// second and request/response latency between two pods on one node, with
// four ways of forwarding between them over the same veths:
//
//	(a) kernel routing (ip_forward, /32 routes; no XDP)
//	(b) a minimal forwarder on github.com/asavie/xdp (bench/asaviefwd)
//	(c) ringnetd, interrupt-driven (default flags)
//	(d) ringnetd --busy-poll --cpus 1
//
// Run it as root from the repository:
//
//	go run ./bench/e2e [--runs 5] [--window 5s] [--variants a,b,c,d]
//	                   [--latency=false] [--quick] [--json FILE] [--markdown FILE]
//
// It builds ringnet, ringnetd and asaviefwd once into a temporary folder,
// makes one topology (a node namespace and two pod namespaces joined by veths
// made with "ringnet pod add"), then runs the variants interleaved round by
// round (a,b,c,d,a,b,c,d,...) so that machine noise hits all alike. Each
// round of a variant: start it, run trafgen in pod A (one worker on CPU 0),
// count what pod B's eth0 receives over the window, stop trafgen, prove from
// the variant's own counters that it carried the traffic, run a sockperf
// ping-pong (a, c, d), stop the variant and check it left nothing behind.
//
// Everything it creates (namespaces, processes) is removed on exit, on error
// and on SIGINT/SIGTERM. Namespaces are named rnbench-PID-...; a later run
// removes those of a run that was killed with SIGKILL.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// options are the benchmark's settings; flags fill them.
type options struct {
	Runs     int
	Warmup   time.Duration
	Window   time.Duration
	Variants []string // ids, in order
	Latency  bool
	JSON     string
	Markdown string
	Command  string // how the run was invoked, for the reports
	// Generator sends pod A's frames: trafgen.GenXDP or GenTrafgen.
	Generator string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	program.Flags("e2e", err)
	ctx, stop := program.Context()
	defer stop()
	rep, err := bench(ctx, o, os.Stderr)
	program.Finish(ctx, "e2e", rep, err, o.JSON, o.Markdown)
}

func parseFlags(args []string) (options, error) {
	var vs []program.Variant
	for _, v := range variants {
		vs = append(vs, program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc})
	}
	fs := program.NewFlagSet("./bench/e2e", "Measures pod-to-pod 64-byte UDP pps and sockperf latency", vs)
	runs := fs.Int("runs", 5, "rounds per variant (interleaved a,b,c,d,a,b,c,d,...)")
	window := fs.Duration("window", 5*time.Second, "throughput measurement window (also sockperf's duration)")
	warmup := fs.Duration("warmup", time.Second, "traffic before the window starts")
	list := fs.String("variants", "a,b,c,d", "comma-separated subset of a,b,c,d")
	lat := fs.Bool("latency", true, "run sockperf ping-pong for a, c and d")
	jsonPath := fs.String("json", "", "write every raw and summarised figure as JSON to `FILE`")
	mdPath := fs.String("markdown", "", "write a docs/benchmarks.md section to `FILE`")
	gen := trafgen.GeneratorFlag(fs)
	quick := fs.Bool("quick", false, "smoke run: 1 round, 2s window, 0.5s warm-up (unless given explicitly)")
	if err := program.Parse(fs, args); err != nil {
		return options{}, err
	}
	if *quick {
		if err := program.Defaults(fs, map[string]string{"runs": "1", "window": "2s", "warmup": "500ms"}); err != nil {
			return options{}, err
		}
	}
	o := options{Runs: *runs, Window: *window, Warmup: *warmup, Latency: *lat, JSON: *jsonPath, Markdown: *mdPath,
		Command: program.Command("./bench/e2e", args), Generator: *gen}
	if err := trafgen.CheckGenerator(o.Generator); err != nil {
		return o, err
	}
	if o.Runs < 1 {
		return o, fmt.Errorf("--runs must be at least 1")
	}
	if o.Window < time.Second {
		return o, fmt.Errorf("--window must be at least 1s")
	}
	if o.Warmup < 0 {
		return o, fmt.Errorf("--warmup must not be negative")
	}
	var err error
	o.Variants, err = program.ParseVariants(*list, vs)
	return o, err
}

// bench runs the whole benchmark and returns its report. A round that fails
// is recorded in the report (and makes Report.Failed true); an error is
// returned only when the benchmark cannot go on (build, topology,
// interruption), together with what was measured so far.
func bench(ctx context.Context, o options, logw io.Writer) (*Report, error) {
	if err := child.Preflight("network namespaces, XDP, AF_XDP", "ip", "trafgen", "taskset", "sysctl", "sockperf"); err != nil {
		return nil, err
	}
	root, err := child.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ringnet-e2e-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := build(ctx, root, dir, logw)
	if err != nil {
		return nil, err
	}
	child.SweepStale(ctx, nsNameRe, logw)

	rep := &Report{Meta: meta(o)}
	for _, id := range o.Variants {
		v, _ := variantByID(id)
		rep.variant(v)
	}
	t, err := newTopo(ctx, bin, dir, logw)
	defer t.cleanup()
	if err != nil {
		return nil, fmt.Errorf("build topology: %w", err)
	}
	fmt.Fprintf(logw, "topology: node %s, pods %s (%s) and %s (%s)\n", t.node, t.podA, podAIP, t.podB, podBIP)

	for round := 1; round <= o.Runs; round++ {
		for _, id := range o.Variants {
			v, _ := variantByID(id)
			res := t.round(ctx, v, o)
			if ctx.Err() != nil {
				// The interrupted round is left out: it measured nothing.
				rep.summarise()
				return rep, child.ErrStopped
			}
			res.Round = round
			vr := rep.variant(v)
			vr.Runs = append(vr.Runs, res)
			switch {
			case res.Error != "":
				fmt.Fprintf(logw, "round %d (%s) %-18s FAILED: %s\n", round, v.ID, v.Name, res.Error)
			default:
				line := fmt.Sprintf("round %d (%s) %-18s rx %8.0f pps  offered %8.0f pps", round, v.ID, v.Name, res.Throughput.RxPPS, res.Throughput.OfferedPPS)
				if l := res.Latency; l != nil {
					line += fmt.Sprintf("  p50 %.1f p99 %.1f p99.9 %.1f µs", l.P50us, l.P99us, l.P999us)
				}
				if n := res.Throughput.TrafgenRestarts; n > 0 {
					line += fmt.Sprintf("  (trafgen restarted %d×)", n)
				}
				fmt.Fprintln(logw, line)
			}
		}
	}
	rep.summarise()
	return rep, nil
}

// round runs one round of one variant.
func (t *topo) round(ctx context.Context, v variant, o options) *RunResult {
	res := &RunResult{}
	fail := func(step string, err error) *RunResult {
		if res.Error == "" {
			res.Error = fmt.Sprintf("%s: %v", step, err)
		}
		return res
	}
	if err := t.preflight(ctx); err != nil {
		return fail("before start", err)
	}
	b0, err := counters.ReadLink(t.podBN, "eth0")
	if err != nil {
		return fail("before start", err)
	}
	inst, err := v.start(ctx, t)
	if err != nil {
		return fail("start", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		final, err := inst.stop(ctx)
		res.Final = final
		if err != nil {
			fail("stop", err)
		}
		if err := t.postflight(ctx); err != nil {
			fail("after stop", err)
		}
	}
	defer stop()

	tp, err := t.throughput(ctx, o.Generator, b0.RxPackets, o.Warmup, o.Window)
	if err != nil {
		return fail("throughput", err)
	}
	res.Throughput = &tp
	if res.Counters, err = inst.check(ctx, tp.Delivered); err != nil {
		return fail("check", err)
	}
	if v.Latency && o.Latency {
		l, err := t.latency(ctx, int(o.Window/time.Second))
		if err != nil {
			return fail("latency", err)
		}
		res.Latency = &l
	}
	stop()
	return res
}

func meta(o options) Meta {
	m := Meta{
		Meta:          program.NewMeta(o.Command, o.Runs),
		WarmupSeconds: o.Warmup.Seconds(),
		WindowSeconds: o.Window.Seconds(),
		Frame:         flow.String(),
		Method: []string{
			"One node namespace and two pod namespaces; each pod's veth is made by `ringnet pod add` (tx checksum/TSO/GSO off in the pod, /32 address, default route via 169.254.1.1).",
			"Traffic: " + trafgen.Method(o.Generator, "pod A") + ", one 60-byte frame (64 on the wire) repeated: IPv4/UDP to pod B, correct IPv4 header checksum, UDP checksum 0.",
			"Figure: pod B eth0 rx_packets (netlink IFLA_STATS64, the counter behind /sys/class/net/eth0/statistics/rx_packets) over the window. A UDP socket in pod B is bound to the destination port and never read: the kernel drops datagrams at the full socket buffer instead of answering ICMP port unreachable.",
			"Offered: pod A eth0 tx_packets + tx_dropped over the same window; loss is 1 - rx/offered: near zero, pod B got everything the generator could send, so the sender (CPU 0: the generator plus the host end's receive path), not the forwarding, set the rate. CPU busy: /proc/stat over the window. CPU ns per packet: the busy time of all CPUs (trafgen, forwarding and pod B's stack together) divided by the packets pod B received.",
			"Each round checks the variant carried the traffic: (a) ip_forward=1 and Ip ForwDatagrams, (b) asaviefwd's own count, (c)/(d) ip_forward=0, no kernel route to the pods but through ringnetd's own slow-path TAP, ringnetd's `reason forwarded` (SIGUSR1); each must be at least 90% of what pod B received.",
			"Latency: `sockperf ping-pong -i <pod B> -p 11111 -t <window> -m 64` from pod A to `sockperf server` in pod B, neither pinned (in (d) CPU 1 belongs to the spinning worker, so both share CPU 0); sockperf's percentiles (half round trip, µs), median over rounds.",
		},
	}
	if o.Latency {
		m.LatencySeconds = int(o.Window / time.Second)
	}
	return m
}
