package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/iperf3"
	"github.com/ringnet/ringnet/bench/internal/sockperf"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// resolveFlow pings the receiver from the sender pod, which proves the
// path and makes the sender's kernel resolve its next hop, and returns the
// benchmark frame for that path: the sender's MAC to its gateway's (cni0
// on a kernel node, ringnet's link-local gateway on a ringnet node).
func resolveFlow(ctx context.Context, send, recv endpoint) (trafgen.Flow, error) {
	f := trafgen.Flow{Src: send.IP, Dst: recv.IP, SrcPort: 40000, DstPort: sinkPort}
	out, err := child.Run(ctx, send.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", recv.IP.String())
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		return f, fmt.Errorf("ping %v from the sender pod: %v\n%s", recv.IP, err, out)
	}
	var route []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	}
	if err := ipJSON(ctx, send.NS, &route, "route", "get", recv.IP.String()); err != nil {
		return f, err
	}
	if len(route) != 1 || route[0].Dev != "eth0" {
		return f, fmt.Errorf("sender pod: route to %v: %+v, want one through eth0", recv.IP, route)
	}
	next := recv.IP.String()
	if route[0].Gateway != "" {
		next = route[0].Gateway
	}
	var neigh []struct {
		LLAddr string `json:"lladdr"`
	}
	if err := ipJSON(ctx, send.NS, &neigh, "neigh", "show", "to", next, "dev", "eth0"); err != nil {
		return f, err
	}
	var link []struct {
		Address string `json:"address"`
	}
	if err := ipJSON(ctx, send.NS, &link, "link", "show", "dev", "eth0"); err != nil {
		return f, err
	}
	if len(neigh) != 1 || len(link) != 1 {
		return f, fmt.Errorf("sender pod: neighbour %s: %+v, eth0: %+v", next, neigh, link)
	}
	if f.DstMAC, err = net.ParseMAC(neigh[0].LLAddr); err != nil {
		return f, fmt.Errorf("sender pod: neighbour %s: %w", next, err)
	}
	if f.SrcMAC, err = net.ParseMAC(link[0].Address); err != nil {
		return f, fmt.Errorf("sender pod: eth0: %w", err)
	}
	return f, nil
}

// ipJSON runs ip -j with args in a namespace and decodes its output.
func ipJSON(ctx context.Context, ns string, v any, args ...string) error {
	out, err := child.Run(ctx, ns, append([]string{"ip", "-j"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("ip -j %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// RunResult is one round of one variant. A part that fails leaves its
// figure out and says why in Errors; the other parts still run.
type RunResult struct {
	Round  int      `json:"round"`
	Errors []string `json:"errors,omitempty"`
	// BackgroundBusy is how busy the machine was (all CPUs, percent) just
	// before the round, with the benchmark idle: other people's work.
	BackgroundBusy float64 `json:"background_busy_percent"`
	// OtherWork is the CPU time other work (processes outside the
	// benchmark's namespaces) took during the round, in percent of one
	// core.
	OtherWork float64 `json:"other_work_cpu_percent"`
	// Disturbed says the machine was still busier than quietBusy when the
	// wait for quiet ran out, or other work took more than otherWorkMax
	// during the round: the summary leaves the round out.
	Disturbed bool `json:"disturbed"`

	Throughput *trafgen.Throughput `json:"throughput,omitempty"`
	// PathOK says the path's counters proved the load went the variant's
	// way; only then does the summary count the figure.
	PathOK bool `json:"path_ok"`
	// WireBytes is the mean size of a frame on the receiving node's uplink
	// during the load: the benchmark frame plus any encapsulation.
	WireBytes float64 `json:"wire_bytes_per_frame,omitempty"`
	// LoadCounters are the path's counters over the load (see
	// setup.snapshot); LoadLosses the part of them that counts frames lost.
	LoadCounters map[string]uint64 `json:"load_counters,omitempty"`
	LoadLosses   map[string]uint64 `json:"load_losses,omitempty"`

	Latency *sockperf.Latency `json:"latency,omitempty"`

	TCP       *iperf3.TCP       `json:"tcp,omitempty"`
	TCPLosses map[string]uint64 `json:"tcp_losses,omitempty"`
}

// round measures one variant once: 64-byte UDP pps, then latency, then TCP.
func (r *runner) round(ctx context.Context, s *setup) *RunResult {
	res := &RunResult{}
	fail := func(part string, err error) {
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", part, err))
	}
	if err := r.load(ctx, s, res); err != nil {
		fail("64-byte UDP", err)
	}
	if ctx.Err() != nil || s.v.Service {
		return res
	}
	l, err := sockperf.PingPong(ctx, &r.procs, s.recv.NS, s.send.NS, s.recv.IP, sockperfPort, r.o.latencySeconds())
	if err != nil {
		fail("latency", err)
	} else {
		res.Latency = &l
	}
	if ctx.Err() != nil {
		return res
	}
	if err := r.tcp(ctx, s, res); err != nil {
		fail("TCP", err)
	}
	return res
}

// load runs trafgen in the sender pod and counts what the receiver pod
// gets, and proves from the path's counters which way it went.
func (r *runner) load(ctx context.Context, s *setup, res *RunResult) error {
	var tp trafgen.Throughput
	d, err := s.counted(ctx, func() error {
		rx0, err := counters.ReadLink(s.recvNL, "eth0")
		if err != nil {
			return err
		}
		l := trafgen.Load{Procs: &r.procs, NS: s.send.NS, Conf: s.trafgenConf, CPU: 0, Ifname: "eth0",
			Sender: s.sendNL, Receiver: s.recvNL, Log: r.logw, Probe: s.probe}
		tp, err = l.Measure(ctx, rx0.RxPackets, r.o.Warmup, r.o.Window)
		return err
	})
	if err != nil {
		return err
	}
	res.Throughput, res.LoadCounters, res.LoadLosses = &tp, nonZero(d), s.losses(d)
	res.WireBytes, err = s.checkPath(d, tp.Delivered)
	res.PathOK = err == nil
	return err
}

// tcp runs one iperf3 stream from the sender pod to the receiver pod.
func (r *runner) tcp(ctx context.Context, s *setup, res *RunResult) error {
	var t iperf3.TCP
	d, err := s.counted(ctx, func() (err error) {
		t, err = iperf3.Run(ctx, &r.procs, s.recv.NS, s.send.NS, s.recv.IP, iperfPort, int(r.o.TCPTime/time.Second))
		return err
	})
	if err == nil {
		res.TCP, res.TCPLosses = &t, s.losses(d)
	}
	return err
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
