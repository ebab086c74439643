package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/iperf3"
	"github.com/ringnet/ringnet/bench/internal/sockperf"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// RunResult is one round of one variant. A part that fails leaves its
// figure out and says why in Errors; the other parts still run.
type RunResult struct {
	Round  int      `json:"round"`
	Errors []string `json:"errors,omitempty"`
	// Noise is what other work did around the round; a disturbed round is
	// left out of the summary.
	cpustat.Noise

	Throughput *trafgen.Throughput `json:"throughput,omitempty"`
	// PathOK says the path's counters proved the load went the variant's
	// way; only then does the summary count the figure.
	PathOK bool `json:"path_ok"`
	// WireBytes is the mean size of a frame on the receiving node's uplink
	// during the load: the benchmark frame plus any encapsulation.
	WireBytes float64 `json:"wire_bytes_per_frame,omitempty"`
	// LoadCounters are the path's counters over the load (see
	// testbed.Bed.Snapshot); LoadLosses the part of them that counts frames
	// lost.
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
	l, err := sockperf.PingPong(ctx, &r.procs, s.Recv.NS, s.Send.NS, s.Recv.IP, sockperfPort, r.o.latencySeconds())
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
	tp, d, err := s.Load(ctx, &r.procs, s.trafgenConf, r.o.Warmup, r.o.Window, r.logw)
	if err != nil {
		return err
	}
	res.Throughput, res.LoadCounters, res.LoadLosses = &tp, counters.NonZero(d), s.Losses(d)
	res.WireBytes, err = s.CheckPath(d, tp.Delivered, s.v.Wire)
	res.PathOK = err == nil
	return err
}

// tcp runs one iperf3 stream from the sender pod to the receiver pod.
func (r *runner) tcp(ctx context.Context, s *setup, res *RunResult) error {
	var t iperf3.TCP
	d, err := s.Counted(ctx, func() (err error) {
		t, err = iperf3.Run(ctx, &r.procs, s.Recv.NS, s.Send.NS, s.Recv.IP, iperfPort, int(r.o.TCPTime/time.Second))
		return err
	})
	if err == nil {
		res.TCP, res.TCPLosses = &t, s.Losses(d)
	}
	return err
}
