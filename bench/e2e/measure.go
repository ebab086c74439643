package main

import (
	"context"
	"time"

	"github.com/ringnet/ringnet/bench/internal/sockperf"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// throughput runs the generator (xdpgen or trafgen) in pod A on CPU 0 and
// measures what pod B receives over window, after warmup. podB0 is pod B's
// rx_packets when the variant started.
func (t *topo) throughput(ctx context.Context, generator string, podB0 uint64, warmup, window time.Duration) (trafgen.Throughput, error) {
	l := trafgen.Load{Procs: &t.procs, NS: t.podA, Conf: t.trafgenConf, CPU: 0, Ifname: "eth0",
		Sender: t.podANL, Receiver: t.podBN, Log: t.logw}
	if generator == trafgen.GenXDP {
		l.XDPGen = &trafgen.XDPGen{Bin: t.bin.xdpgen, Frame: t.frameFile}
	}
	return l.Measure(ctx, podB0, warmup, window)
}

// latency runs a sockperf server in pod B and a ping-pong client in pod A.
func (t *topo) latency(ctx context.Context, seconds int) (sockperf.Latency, error) {
	return sockperf.PingPong(ctx, &t.procs, t.podB, t.podA, podBIP, sockperfPort, seconds)
}
