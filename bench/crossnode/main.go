// Command crossnode is ringnet's cross-node benchmark: pod to pod between
// two nodes on one underlay subnet (192.168.50.0/24), seven datapaths
// measured in one run:
//
//	(a) kernel host-gw: Linux routing, as Flannel's host-gw backend
//	(b) kernel VXLAN: Flannel's vxlan backend datapath (flannel.1)
//	(c) ringnet direct, (d) ringnet VXLAN, (e) ringnet IPIP: ringnetd on
//	    both nodes with a cluster file in that tunnel mode
//	(f) ringnet ClusterIP: (d) with the sender sending to a ClusterIP
//	    whose one backend is the receiver (64-byte pps only)
//	(g) ringnet VXLAN, idle spin: (d) with ringnetd --idle-spin 100us,
//	    the latency setting
//
// Run it as root from the repository:
//
//	go run ./bench/crossnode [--runs 3] [--window 5s] [--tcp-time 4s] [--quiet-wait 1m]
//	                         [--variants a,b,c,d,e,f,g] [--ringnetd-flags "..."] [--quick]
//	                         [--json FILE] [--markdown FILE]
//
// It builds ringnetd and the CNI plugin once, then one topology per
// variant (internal/topo: an underlay bridge, two node namespaces, a
// sender pod on n1 and a receiver pod on n2; the ringnet pods made by the
// CNI plugin through libcni), all kept for the whole run. Rounds are
// interleaved (a,b,...,g,a,b,...) so that machine noise hits all alike.
// Each round of a variant measures, in order:
//
//   - 64-byte UDP packets per second: bench/xdpgen (or trafgen) in the
//     sender pod on CPU 0, counted at the receiver pod's eth0 over the window;
//     the receiving node's counters must show that the frames came the
//     variant's way (its uplink saw them at the variant's size on the
//     wire; IP forwarding, flannel.1, or ringnetd's to_peer/from_peer),
//   - sockperf ping-pong latency between the pods (p50, p99, p99.9),
//   - iperf3 TCP throughput between the pods, one stream.
//
// The machine may be shared: before each round it waits (--quiet-wait)
// until other work leaves the CPUs alone, and it marks a round disturbed,
// and leaves it out of the medians, when processes outside its namespaces
// took more than a tenth of a core while it ran. The report says what
// limited each figure: the sender's core, losses on the path (by counter),
// or the CPUs.
//
// Everything it creates (topologies rntxbn*, processes, temporary files)
// is removed on exit, on error and on SIGINT/SIGTERM; a later run sweeps
// what a run killed with SIGKILL left.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
)

// options are the benchmark's settings; flags fill them.
type options struct {
	Runs     int
	Warmup   time.Duration
	Window   time.Duration // the load's window and sockperf's duration
	TCPTime  time.Duration
	Quiet    time.Duration // how long to wait for a quiet machine before a round
	Variants []string      // ids, in order
	Ringnetd []string      // more ringnetd flags for the ringnet variants
	JSON     string
	Markdown string
	Command  string // how the run was invoked, for the reports
	// Generator sends the 64-byte load: trafgen.GenXDP or GenTrafgen.
	Generator string

	bins ringnode.Binaries // prebuilt (the tests'); built by bench if empty
}

func (o options) latencySeconds() int { return int(o.Window / time.Second) }

func main() {
	o, err := parseFlags(os.Args[1:])
	program.Flags("crossnode", err)
	ctx, stop := program.Context()
	defer stop()
	rep, err := bench(ctx, o, os.Stderr)
	program.Finish(ctx, "crossnode", rep, err, o.JSON, o.Markdown)
}

func parseFlags(args []string) (options, error) {
	vs := make([]program.Variant, len(variants))
	for i, v := range variants {
		vs[i] = program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc}
	}
	fs := program.NewFlagSet("./bench/crossnode", "Measures pod-to-pod 64-byte UDP pps, sockperf latency and iperf3 TCP between two nodes", vs)
	lf := program.AddLoadFlags(fs, 3, "rounds per variant (interleaved a,b,...,g,a,b,...)", 5*time.Second, "64-byte UDP measurement window (also sockperf's duration)", "round")
	tcpTime := fs.Duration("tcp-time", 4*time.Second, "iperf3 duration")
	list := fs.String("variants", "a,b,c,d,e,f,g", "comma-separated subset of a,b,c,d,e,f,g")
	gen := trafgen.GeneratorFlag(fs)
	daemonFlags := fs.String("ringnetd-flags", "", "more ringnetd flags for the ringnet variants (c) to (g), space-separated, e.g. \"--cpus 1\"")
	if err := lf.Parse(args, map[string]string{"tcp-time": "1s"}); err != nil {
		return options{}, err
	}
	o := options{Runs: *lf.Runs, Window: *lf.Window, Warmup: *lf.Warmup, TCPTime: *tcpTime, Quiet: *lf.Quiet, JSON: *lf.JSON, Markdown: *lf.Markdown,
		Ringnetd: strings.Fields(*daemonFlags), Command: program.Command("./bench/crossnode", args), Generator: *gen}
	if err := trafgen.CheckGenerator(o.Generator); err != nil {
		return o, err
	}
	switch {
	case o.Window%time.Second != 0:
		return o, errors.New("--window must be whole seconds (sockperf runs for it)")
	case o.TCPTime < time.Second || o.TCPTime%time.Second != 0:
		return o, errors.New("--tcp-time must be whole seconds, at least 1s")
	}
	var err error
	o.Variants, err = program.ParseVariants(*list, vs)
	return o, err
}

// runner is one benchmark run's processes and log.
type runner struct {
	o     options
	procs child.Group // the generator, sockperf and iperf3 servers
	logw  io.Writer
	watch cpustat.Watch // what runs in every setup's namespaces is the benchmark's
}

// bench runs the whole benchmark and returns its report. A round that fails
// is recorded in the report (and makes Report.Failed true); an error is
// returned only when the benchmark cannot go on (build, topology,
// interruption), together with what was measured so far.
func bench(ctx context.Context, o options, logw io.Writer) (rep *Report, err error) {
	if err := child.Preflight("network namespaces, XDP, AF_XDP", "ip", "ethtool", "ping", "trafgen", "taskset", "sockperf", "iperf3"); err != nil {
		return nil, err
	}
	if _, err := child.ModuleRoot(ctx); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ringnet-crossnode-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{bins: o.bins, dir: dir, flags: o.Ringnetd}
	if e.bins.Ringnetd == "" {
		fmt.Fprintf(logw, "build ringnetd and the CNI plugin\n")
		if e.bins, err = ringnode.Build(filepath.Join(dir, "bin")); err != nil {
			return nil, err
		}
	}
	if o.Generator == trafgen.GenXDP {
		e.xdpgen = filepath.Join(dir, "bin", "xdpgen")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", e.xdpgen, "github.com/ringnet/ringnet/bench/xdpgen").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build xdpgen: %w\n%s", err, out)
		}
	}
	if err := topo.Sweep(topoPrefix); err != nil {
		fmt.Fprintf(logw, "sweep what earlier runs left: %v\n", err)
	}

	r := &runner{o: o, logw: logw, watch: cpustat.Watch{Wait: o.Quiet, Log: logw}}
	defer r.procs.KillAll()
	var setups []*setup
	defer func() {
		for i := len(setups) - 1; i >= 0; i-- {
			if cerr := setups[i].close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up (%s): %w", setups[i].v.ID, cerr))
			}
		}
	}()
	rep = newReport(o)
	for _, id := range o.Variants {
		v, _ := variantByID(id)
		s, err := newSetup(ctx, e, v)
		setups = append(setups, s)
		if err != nil {
			if ctx.Err() != nil {
				return nil, child.ErrStopped
			}
			return nil, fmt.Errorf("build (%s) %s: %w", v.ID, v.Name, err)
		}
		rep.variant(v).PodMTU = s.PodMTU
		if err := r.watch.Own(s.Namespaces()...); err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "(%s) %-15s pod %v on n1 -> pod %v on n2, pod MTU %d (topology %s)\n", v.ID, v.Name, s.Send.IP, s.Recv.IP, s.PodMTU, s.Topo.ID)
	}

	for round := 1; round <= o.Runs; round++ {
		for _, s := range setups {
			var res *RunResult
			noise := r.watch.Round(ctx, func() { res = r.round(ctx, s) })
			if ctx.Err() != nil {
				// The interrupted round is left out: it measured nothing whole.
				rep.summarise()
				return rep, child.ErrStopped
			}
			res.Round, res.Noise = round, noise
			vr := rep.variant(s.v)
			vr.Runs = append(vr.Runs, res)
			fmt.Fprintln(logw, res.line(s.v))
		}
	}
	rep.summarise()
	return rep, nil
}

// line is the round's one-line log entry.
func (res *RunResult) line(v variant) string {
	line := fmt.Sprintf("round %d (%s) %-15s", res.Round, v.ID, v.Name)
	if res.Disturbed {
		line += fmt.Sprintf(" [disturbed: machine %.0f%% busy before, other work %.0f%% of a core during]", res.BackgroundBusy, res.OtherWork)
	}
	if tp := res.Throughput; tp != nil {
		line += fmt.Sprintf(" rx %7.0f pps offered %7.0f", tp.RxPPS, tp.OfferedPPS)
	}
	if l := res.Latency; l != nil {
		line += fmt.Sprintf("  p50 %.1f p99 %.1f p99.9 %.1f µs", l.P50us, l.P99us, l.P999us)
	}
	if t := res.TCP; t != nil {
		line += fmt.Sprintf("  TCP %.2f Gbit/s (%d retr)", t.Gbps, t.Retransmits)
	}
	for _, e := range res.Errors {
		line += "\n  FAILED: " + e
	}
	return line
}
