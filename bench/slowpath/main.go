// Command slowpath benchmarks ringnet's slow path on one node with three
// pods, in one run:
//
//  1. Host ↔ pod through the TAP, next to the kernel path: TCP throughput
//     from the node to pod A and back (iperf3, one stream) and UDP
//     request/response latency (sockperf ping-pong, 64-byte messages), for
//     (k) the kernel routing to the pod's veth directly (a /32 route and a
//     permanent neighbour on the host end, as Calico does; no ringnetd),
//     (t) ringnetd with default flags (host → ringnet0 → worker → pod), and
//     (tb) ringnetd --busy-poll --cpus 1.
//  2. Pod-to-pod TCP throughput (iperf3 pod A → pod B) while pod C floods
//     the node's address with 60-byte UDP frames at --flood-pps (default
//     200k pps), all of them on the punt list (to_host_new: the node never
//     answers them): with no flood, with the flood dropped at the token
//     bucket (--punt-limit to_host_new=0), with the default limits, and
//     with to_host_new=50000/1024, the budget every host-bound frame had
//     before to_host_new was split from to_host.
//
// Run it as root from the repository:
//
//	go run ./bench/slowpath [--runs 3] [--window 5s] [--flood-pps 200000] [--markdown FILE] [--json FILE]
//
// Variants run interleaved round by round so that machine noise hits all
// alike; the tables give the median over rounds and the range. Everything
// it creates (namespaces rnsp-PID-*, processes) is removed on exit, on
// error and on SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/program"
	"golang.org/x/sys/unix"
)

type options struct {
	Runs     int
	Window   time.Duration
	FloodPPS int
	Parts    []string
	Floods   []floodVariant
	Extra    []string // ringnetd flags for every run
	Markdown string
	JSON     string
	Command  string
}

// hostVariant is a way for the node to reach pod A.
type hostVariant struct {
	ID, Name, Desc string
	flags          []string // ringnetd's; nil for the kernel path
}

var hostVariants = []hostVariant{
	{"k", "kernel: route to the pod's veth",
		"the node's kernel reaches pod A over its host-side veth, as a kernel CNI (Calico) does: a /32 route and a permanent neighbour on the host end, the setup of bench/e2e's variant (a); no ringnetd", nil},
	{"t", "ringnetd slow path (TAP)",
		"ringnetd with default flags: node → ringnet0 (the TAP) → worker → pod A's AF_XDP socket, and back", []string{}},
	{"tb", "ringnetd slow path, --busy-poll --cpus 1",
		"ringnetd --busy-poll --cpus 1: one worker spinning on its rings, pinned to CPU 1", []string{"--busy-poll", "--cpus", "1"}},
}

// floodVariant is a flood configuration.
type floodVariant struct {
	ID, Name, Desc string
	flood          bool
	flags          []string
}

// floodVariants are the flood configurations for --flood-limits: none, then
// one per to_host_new limit ("default": ringnetd's own; 0: all dropped at
// the token bucket, which leaves only the flood's cost to the fast path).
func floodVariants(limits []string) []floodVariant {
	vs := []floodVariant{{"none", "no flood", "pod C sends nothing; ringnetd with default flags", false, nil}}
	for _, l := range limits {
		switch l {
		case "default":
			vs = append(vs, floodVariant{"default", "flood, ringnetd's default limits",
				"ringnetd with default flags: the flood's frames within to_host_new's token bucket go to the node through the TAP, the rest are dropped at the bucket", true, nil})
		case "0":
			vs = append(vs, floodVariant{"0", "flood, all dropped at the bucket (to_host_new=0)",
				"ringnetd --punt-limit to_host_new=0: every flood frame the worker takes is dropped at the token bucket, so this is the flood's cost without the slow path's (trafgen, the kernel's copy into pod C's AF_XDP socket, the worker's decode)", true, []string{"--punt-limit", "to_host_new=0"}})
		default:
			vs = append(vs, floodVariant{l, "flood, --punt-limit to_host_new=" + l,
				"ringnetd --punt-limit to_host_new=" + l + ": a different bucket for the frames the node has not answered than the default", true, []string{"--punt-limit", "to_host_new=" + l}})
		}
	}
	return vs
}

// method says how the benchmark measures, for the JSON's readers.
func method(o options) []string {
	return []string{
		"One node namespace, its address 192.168.77.1 on a veth (IPv4 forwarding off: node ↔ pod traffic is local to the node), and three pods made by `ringnet pod add` (A 10.244.0.10, B .11, C .12). ringnetd is started afresh for every round of every variant that runs it; variants run interleaved round by round.",
		fmt.Sprintf("TCP: iperf3, one stream, for %g s, the rate received: node → pod A, then pod A → node (`-R`); under the flood, pod A → pod B.", o.Window.Seconds()),
		fmt.Sprintf("Latency: `sockperf ping-pong -m 64` for %g s from the node to a sockperf server in pod A; sockperf's percentiles (half round trip, µs).", o.Window.Seconds()),
		"A ringnetd round of the node ↔ pod part counts only if ringnetd read at least 10 000 frames from the TAP (host_rx), proof that the traffic went through the slow path.",
		fmt.Sprintf("Flood: trafgen in pod C (`taskset -c 0 trafgen --cpus 1`) sends one 60-byte UDP frame (64 on the wire) to the node's address, port 9 (closed), at %d pps, from a second before the measurement to its end: the node never answers them, so every frame is to_host_new on the punt list. Offered: pod C's eth0 tx_packets over the iperf3 run; AF_XDP ring full: xsk_rx_ring_full + xsk_rx_dropped of pod C's port (frames the kernel could not put on the socket's RX ring); to host, over limit, queue full: ringnetd's to_host + to_host_new, to_host_over_limit + to_host_new_over_limit and punt_queue_full counters (SIGUSR1) over the same time.", o.FloodPPS),
	}
}

// HostResult is one round of a host variant.
type HostResult struct {
	ToPodGbps, ToHostGbps float64
	Latency               Latency
	HostRx                uint64 `json:",omitempty"` // ringnetd: frames read from the TAP during the round
	Error                 string `json:",omitempty"`
}

// FloodResult is one round of a flood variant.
type FloodResult struct {
	PodToPodGbps  float64
	OfferedPPS    float64 // pod C's eth0 tx_packets rate
	ToHostPPS     float64 // punted to the host
	OverLimitPPS  float64 // dropped at the token bucket
	QueueFullPPS  float64
	WorkerPPS     float64 // frames the worker took from pod C's socket
	RingFullPPS   float64 // frames the kernel dropped at pod C's full AF_XDP RX ring
	Error         string  `json:",omitempty"`
	WindowSeconds float64
}

type Report struct {
	Command, Date, Kernel, CPU, Go string
	Cores                          int
	Runs                           int
	WindowSeconds                  float64
	FloodPPS                       int
	// HostVariants and FloodVariants are the variants measured, in the
	// order they ran, and Method how, for bench/report.
	HostVariants, FloodVariants []program.Variant
	Method                      []string
	Host                        map[string][]HostResult
	Flood                       map[string][]FloodResult
	floods                      []floodVariant
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "slowpath:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, o, os.Stderr)
	if rep != nil {
		md := rep.markdown()
		fmt.Print(md)
		if o.Markdown != "" {
			err = errors.Join(err, os.WriteFile(o.Markdown, []byte(md), 0o644))
		}
		if o.JSON != "" {
			data, _ := json.MarshalIndent(rep, "", "  ")
			err = errors.Join(err, os.WriteFile(o.JSON, data, 0o644))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "slowpath:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("slowpath", flag.ContinueOnError)
	runs := fs.Int("runs", 3, "rounds of every variant, interleaved")
	window := fs.Duration("window", 5*time.Second, "duration of each iperf3 and sockperf run")
	pps := fs.Int("flood-pps", 200000, "rate of the punt flood from pod C")
	parts := fs.String("parts", "host,flood", "which parts to run: host (node ↔ pod), flood (pod ↔ pod under a punt flood)")
	extra := fs.String("ringnetd-flags", "", "extra ringnetd flags for every run, space-separated (e.g. \"--punt-limit to_host=50000\")")
	limits := fs.String("flood-limits", "0,default,50000/1024", "comma-separated to_host_new limits (RATE[/BURST], 0 or default) to measure the flood with")
	md := fs.String("markdown", "", "write the tables to `FILE`")
	js := fs.String("json", "", "write every figure to `FILE`")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if *runs < 1 || *window < time.Second || *pps < 1 {
		return options{}, errors.New("--runs, --window and --flood-pps must be positive (window at least 1s)")
	}
	cmd := "go run ./bench/slowpath"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	o := options{Runs: *runs, Window: *window, FloodPPS: *pps, Markdown: *md, JSON: *js, Command: cmd,
		Parts: strings.Split(*parts, ","), Floods: floodVariants(strings.Split(*limits, ",")), Extra: strings.Fields(*extra)}
	for _, p := range o.Parts {
		if p != "host" && p != "flood" {
			return o, fmt.Errorf("--parts: unknown part %q", p)
		}
	}
	return o, nil
}

func bench(ctx context.Context, o options, logw io.Writer) (*Report, error) {
	if err := child.Preflight("network namespaces, XDP, AF_XDP, TAP", "ip", "iperf3", "sockperf", "trafgen", "taskset"); err != nil {
		return nil, err
	}
	child.SweepStale(ctx, regexp.MustCompile(`^`+nsPrefix+`(\d+)-`), logw)
	dir, err := os.MkdirTemp("", "ringnet-slowpath-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t, err := newTopo(ctx, dir, logw)
	defer t.cleanup()
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	rep := newReport(o)
	secs := int(o.Window / time.Second)
	rep.floods = o.Floods
	if slices.Contains(o.Parts, "host") {
		for _, v := range hostVariants {
			rep.HostVariants = append(rep.HostVariants, program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc})
		}
	}
	if slices.Contains(o.Parts, "flood") {
		for _, v := range o.Floods {
			rep.FloodVariants = append(rep.FloodVariants, program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc})
		}
	}
	t.extra = o.Extra
	for round := 1; round <= o.Runs; round++ {
		for _, v := range hostVariants {
			if !slices.Contains(o.Parts, "host") {
				break
			}
			r := t.hostRound(ctx, v, secs)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Host[v.ID] = append(rep.Host[v.ID], r)
			if r.Error != "" {
				fmt.Fprintf(logw, "round %d %-3s FAILED: %s\n", round, v.ID, r.Error)
				continue
			}
			fmt.Fprintf(logw, "round %d %-3s host→pod %5.2f Gbit/s  pod→host %5.2f Gbit/s  p50 %.1f p99 %.1f µs\n",
				round, v.ID, r.ToPodGbps, r.ToHostGbps, r.Latency.P50, r.Latency.P99)
		}
		for _, v := range o.Floods {
			if !slices.Contains(o.Parts, "flood") {
				break
			}
			r := t.floodRound(ctx, v, o.FloodPPS, secs)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Flood[v.ID] = append(rep.Flood[v.ID], r)
			if r.Error != "" {
				fmt.Fprintf(logw, "round %d %-7s FAILED: %s\n", round, v.ID, r.Error)
				continue
			}
			fmt.Fprintf(logw, "round %d %-7s pod→pod %5.2f Gbit/s  flood %7.0f pps  worker took %7.0f pps (ring full %6.0f)  to host %7.0f pps  over limit %7.0f pps  queue full %5.0f pps\n",
				round, v.ID, r.PodToPodGbps, r.OfferedPPS, r.WorkerPPS, r.RingFullPPS, r.ToHostPPS, r.OverLimitPPS, r.QueueFullPPS)
		}
	}
	return rep, nil
}

// hostRound measures one host variant once.
func (t *topo) hostRound(ctx context.Context, v hostVariant, secs int) (res HostResult) {
	a := t.pods[0]
	var d *ringnetd
	var c0 map[string]uint64
	if v.flags == nil {
		if err := t.kernelPath(ctx, false); err != nil {
			res.Error = err.Error()
			return res
		}
		defer t.kernelPath(ctx, true)
	} else {
		var err error
		if d, err = t.startRingnetd(ctx, v.flags...); err != nil {
			res.Error = err.Error()
			return res
		}
		defer d.stop()
		if c0, err = d.counters(ctx); err != nil {
			res.Error = err.Error()
			return res
		}
	}
	var err error
	if res.ToPodGbps, err = t.iperf3(ctx, a.ns, t.node, a.ip, secs, false); err != nil {
		res.Error = "host → pod: " + err.Error()
		return res
	}
	if res.ToHostGbps, err = t.iperf3(ctx, a.ns, t.node, a.ip, secs, true); err != nil {
		res.Error = "pod → host: " + err.Error()
		return res
	}
	if res.Latency, err = t.sockperf(ctx, a.ns, t.node, a.ip, secs); err != nil {
		res.Error = "latency: " + err.Error()
		return res
	}
	if d != nil {
		c1, err := d.counters(ctx)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		// Proof that the TAP carried it.
		res.HostRx = c1["host_rx"] - c0["host_rx"]
		if res.HostRx < 10000 {
			res.Error = fmt.Sprintf("ringnetd read only %d frames from the TAP: the traffic went elsewhere", res.HostRx)
		}
	}
	return res
}

// floodRound measures pod A → pod B with one flood variant.
func (t *topo) floodRound(ctx context.Context, v floodVariant, pps, secs int) (res FloodResult) {
	a, b, c := t.pods[0], t.pods[1], t.pods[2]
	d, err := t.startRingnetd(ctx, v.flags...)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer d.stop()
	if v.flood {
		tg, err := t.startFlood(ctx, pps)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer tg.Stop(syscall.SIGINT, 5*time.Second)
		if err := child.Sleep(ctx, time.Second); err != nil {
			return res
		}
	}
	c0, err := d.counters(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	tx0, _ := t.txPackets(ctx, c.ns)
	start := time.Now()
	res.PodToPodGbps, err = t.iperf3(ctx, b.ns, a.ns, b.ip, secs, false)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	el := time.Since(start).Seconds()
	tx1, _ := t.txPackets(ctx, c.ns)
	c1, err := d.counters(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.WindowSeconds = el
	res.OfferedPPS = float64(tx1-tx0) / el
	delta := func(names ...string) (n uint64) {
		for _, r := range names {
			n += c1[r] - c0[r]
		}
		return n
	}
	res.ToHostPPS = float64(delta("to_host", "to_host_new")) / el
	res.OverLimitPPS = float64(delta("to_host_over_limit", "to_host_new_over_limit")) / el
	res.QueueFullPPS = float64(c1["punt_queue_full"]-c0["punt_queue_full"]) / el
	res.WorkerPPS = float64(c1[c.hostIf+".rx_frames"]-c0[c.hostIf+".rx_frames"]) / el
	res.RingFullPPS = float64(c1[c.hostIf+".xsk_rx_ring_full"]+c1[c.hostIf+".xsk_rx_dropped"]-
		c0[c.hostIf+".xsk_rx_ring_full"]-c0[c.hostIf+".xsk_rx_dropped"]) / el
	return res
}

func newReport(o options) *Report {
	r := &Report{Command: o.Command, Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Go: runtime.Version(),
		Cores: runtime.NumCPU(), Runs: o.Runs, WindowSeconds: o.Window.Seconds(), FloodPPS: o.FloodPPS,
		Method: method(o), Host: map[string][]HostResult{}, Flood: map[string][]FloodResult{}}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return r
}

// stat is the median and range of the successful rounds' values.
func stat(vals []float64) (med, lo, hi float64, n int) {
	if len(vals) == 0 {
		return 0, 0, 0, 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m, s[0], s[len(s)-1], len(s)
}

func (r *Report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s` (as root)  \n", r.Command)
	fmt.Fprintf(&b, "Machine: %s, %d cores, Linux %s, %s; %s. %d rounds, %.0f s windows; median (min–max).\n\n",
		r.CPU, r.Cores, r.Kernel, r.Go, r.Date, r.Runs, r.WindowSeconds)
	if len(r.Host) > 0 {
		r.hostTable(&b)
	}
	if len(r.Flood) > 0 {
		r.floodTable(&b)
	}
	return b.String()
}

func (r *Report) hostTable(b *strings.Builder) {
	b.WriteString("| node ↔ pod A | node → pod TCP (Gbit/s) | pod → node TCP (Gbit/s) | UDP latency p50 (µs) | p99 (µs) | p99.9 (µs) |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, v := range hostVariants {
		var to, from, p50, p99, p999 []float64
		failed := 0
		for _, x := range r.Host[v.ID] {
			if x.Error != "" {
				failed++
				continue
			}
			to, from = append(to, x.ToPodGbps), append(from, x.ToHostGbps)
			p50, p99, p999 = append(p50, x.Latency.P50), append(p99, x.Latency.P99), append(p999, x.Latency.P999)
		}
		fmt.Fprintf(b, "| (%s) %s%s | %s | %s | %s | %s | %s |\n", v.ID, v.Name, failedNote(failed),
			fmtStat(to, 2), fmtStat(from, 2), fmtStat(p50, 1), fmtStat(p99, 1), fmtStat(p999, 1))
	}
	b.WriteString("\n")
}

func (r *Report) floodTable(b *strings.Builder) {
	var base, drop float64
	if vals := floodVals(r.Flood["0"], func(x FloodResult) float64 { return x.PodToPodGbps }); len(vals) > 0 {
		drop, _, _, _ = stat(vals)
	}
	if vals := floodVals(r.Flood["none"], func(x FloodResult) float64 { return x.PodToPodGbps }); len(vals) > 0 {
		base, _, _, _ = stat(vals)
	}
	fmt.Fprintf(b, "| pod A → pod B TCP while pod C floods the node at %d pps | flood offered (pps) | AF_XDP ring full (pps) | to host (pps) | over limit (pps) | pod A → pod B (Gbit/s) | vs no flood | vs flood dropped at the bucket |\n", r.FloodPPS)
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, v := range r.floods {
		rs := r.Flood[v.ID]
		failed := 0
		for _, x := range rs {
			if x.Error != "" {
				failed++
			}
		}
		g := floodVals(rs, func(x FloodResult) float64 { return x.PodToPodGbps })
		med, _, _, _ := stat(g)
		ratio, vsDrop := "–", "–"
		if base > 0 && len(g) > 0 {
			ratio = fmt.Sprintf("%+.1f%%", 100*(med/base-1))
		}
		if drop > 0 && len(g) > 0 && v.flood {
			vsDrop = fmt.Sprintf("%+.1f%%", 100*(med/drop-1))
		}
		fmt.Fprintf(b, "| %s%s | %s | %s | %s | %s | %s | %s | %s |\n", v.Name, failedNote(failed),
			fmtStat(floodVals(rs, func(x FloodResult) float64 { return x.OfferedPPS }), 0),
			fmtStat(floodVals(rs, func(x FloodResult) float64 { return x.RingFullPPS }), 0),
			fmtStat(floodVals(rs, func(x FloodResult) float64 { return x.ToHostPPS }), 0),
			fmtStat(floodVals(rs, func(x FloodResult) float64 { return x.OverLimitPPS }), 0),
			fmtStat(g, 2), ratio, vsDrop)
	}
}

func floodVals(rs []FloodResult, f func(FloodResult) float64) []float64 {
	var out []float64
	for _, x := range rs {
		if x.Error == "" {
			out = append(out, f(x))
		}
	}
	return out
}

func fmtStat(vals []float64, prec int) string {
	med, lo, hi, n := stat(vals)
	if n == 0 {
		return "–"
	}
	if n == 1 {
		return fmt.Sprintf("%.*f", prec, med)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, med, prec, lo, prec, hi)
}

func failedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d rounds failed)", n)
}
