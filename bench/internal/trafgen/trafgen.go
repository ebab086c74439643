// Package trafgen drives trafgen (netsniff-ng) as the benchmarks' packet
// source: it builds the one 64-byte IPv4/UDP frame they send, writes it as
// a trafgen config (one flow, or with random ports a new flow nearly
// every frame), runs trafgen with one worker pinned to one CPU, and
// measures a window of the load: what the receiver's interface counts,
// what the sender offered, and how every CPU was spent meanwhile.
//
// trafgen forks one worker per CPU unless told --cpus 1, does not pass
// SIGINT on to its worker, and aborts when a flush of its TX ring meets a
// full socket buffer; Measure copes with all three. Counters are read over
// netlink handles that the caller opens in the namespaces (counters.OpenNS).
package trafgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/vishvananda/netlink"
)

// Throughput is one measured window of the load.
type Throughput struct {
	WindowSeconds float64 `json:"window_seconds"`
	// RxPPS is the figure: frames per second received by the receiver's
	// interface (its rx_packets, which for a veth counts what its peer
	// handed over).
	RxPPS float64 `json:"rx_pps"`
	// OfferedPPS is what trafgen got into the sender's interface:
	// tx_packets plus tx_dropped (frames the other end refused, e.g. a
	// full XDP ring).
	OfferedPPS float64 `json:"offered_pps"`
	// SenderTxDroppedPPS is the dropped part of OfferedPPS. (The JSON
	// name is from the single-node benchmark, where pod A sends.)
	SenderTxDroppedPPS float64 `json:"pod_a_tx_dropped_pps"`
	// CPU is how each CPU spent the window.
	CPU []cpustat.Share `json:"cpu"`
	// CPUNsPerPacket is the whole machine's busy CPU time over the window
	// divided by the frames received: trafgen, the forwarding and the
	// receiver's stack together. Lower is more efficient.
	CPUNsPerPacket float64 `json:"cpu_ns_per_packet"`
	// Delivered counts every frame the receiver got from the caller's base
	// count to after trafgen stopped; the forwarder's own counters must
	// match it.
	Delivered uint64 `json:"delivered_total"`
	// TrafgenExitedOnSIGINT is false if trafgen had to be killed.
	TrafgenExitedOnSIGINT bool `json:"trafgen_exited_on_sigint"`
	// TrafgenRestarts counts measurements thrown away because trafgen
	// aborted (see Measure).
	TrafgenRestarts int `json:"trafgen_restarts"`
	// Probe holds the rate per second, over the window, of each counter
	// Load.Probe returned.
	Probe map[string]float64 `json:"probe_per_second,omitempty"`
}

// Load is trafgen sending one config as fast as one core lets it, and the
// two interfaces its frames are counted on.
type Load struct {
	Procs    *child.Group
	NS       string          // the sender's namespace; trafgen runs there
	Conf     string          // trafgen config file, e.g. Flow.Config written out
	CPU      int             // the CPU trafgen and its one worker run on
	Ifname   string          // the interface trafgen sends on and the receiver counts on ("eth0" on both)
	Sender   *netlink.Handle // netlink in NS
	Receiver *netlink.Handle // netlink in the receiver's namespace
	Log      io.Writer       // a line for each measurement taken again
	// Probe, if set, reads more counters at the edges of the window, e.g.
	// the forwarder's CPU time; Measure reports their rates.
	Probe func() (map[string]uint64, error)
	// XDPGen, if set, sends with ringnet's own AF_XDP generator
	// (bench/xdpgen) instead of trafgen; Conf is then unused.
	XDPGen *XDPGen
}

// XDPGen is bench/xdpgen sending one frame.
type XDPGen struct {
	Bin      string // the xdpgen binary
	Frame    string // a file holding the frame (Flow.Frame)
	NewFlows bool   // as Flow.NewFlows
}

const (
	maxAttempts = 3
	abortMsg    = "Flushing TX_RING failed: Resource temporarily unavailable"
)

var errAborted = errors.New("trafgen aborted: " + abortMsg)

// start starts trafgen. taskset pins trafgen's parent; --cpus 1 makes it
// fork one worker, which it pins to the first allowed CPU itself.
// --no-sock-mem and --notouch-irq keep it from retuning socket memory and
// IRQ affinities. trafgen's parent does not pass SIGINT on to its worker,
// so it is stopped through its process group, as a terminal's ^C would.
func (l Load) start(ctx context.Context) (*child.Proc, error) {
	if g := l.XDPGen; g != nil {
		args := []string{"taskset", "-c", strconv.Itoa(l.CPU), g.Bin, "--dev", l.Ifname, "--frame", g.Frame}
		if g.NewFlows {
			args = append(args, "--new-flows")
		}
		return l.Procs.StartReady(ctx, "xdpgen", l.NS, "Running!", 10*time.Second, args...)
	}
	return l.Procs.StartReady(ctx, "trafgen", l.NS, "Running!", 10*time.Second, "taskset", "-c", strconv.Itoa(l.CPU),
		"trafgen", "--cpus", "1", "--no-sock-mem", "--notouch-irq", "--dev", l.Ifname, "--conf", l.Conf)
}

// sample is every counter read at one instant.
type sample struct {
	at     time.Time
	tx, rx counters.Link
	cpu    []cpustat.Times
	probe  map[string]uint64
}

func (l Load) sample() (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.tx, err = counters.ReadLink(l.Sender, l.Ifname); err != nil {
		return s, fmt.Errorf("sender: %w", err)
	}
	if s.rx, err = counters.ReadLink(l.Receiver, l.Ifname); err != nil {
		return s, fmt.Errorf("receiver: %w", err)
	}
	s.cpu, _ = cpustat.Read() // CPU figures are informative; never fail a run for them
	if l.Probe != nil {
		if s.probe, err = l.Probe(); err != nil {
			return s, fmt.Errorf("probe: %w", err)
		}
	}
	return s, nil
}

// window samples the counters after warmup and again after window, and
// checks that trafgen ran all along.
func (l Load) window(ctx context.Context, tg *child.Proc, warmup, window time.Duration) (s0, s1 sample, err error) {
	if err := child.Sleep(ctx, warmup); err != nil {
		return s0, s1, err
	}
	if s0, err = l.sample(); err != nil {
		return s0, s1, err
	}
	if err := child.Sleep(ctx, window); err != nil {
		return s0, s1, err
	}
	if s1, err = l.sample(); err != nil {
		return s0, s1, err
	}
	if tg.Exited() {
		if strings.Contains(tg.Output(), abortMsg) {
			return s0, s1, errAborted
		}
		return s0, s1, fmt.Errorf("trafgen exited during the measurement (%v)%s", tg.Err(), tg.Tail())
	}
	return s0, s1, nil
}

// Measure runs trafgen and measures what the receiver gets over window,
// after warmup. rxBase is a receiver rx_packets count taken earlier by the
// caller: Delivered counts from it.
func (l Load) Measure(ctx context.Context, rxBase uint64, warmup, window time.Duration) (Throughput, error) {
	var tp Throughput
	var s0, s1 sample
	for attempt := 1; ; attempt++ {
		tg, err := l.start(ctx)
		if err != nil {
			return tp, err
		}
		s0, s1, err = l.window(ctx, tg, warmup, window)
		if err == nil {
			tp.TrafgenExitedOnSIGINT = tg.Stop(syscall.SIGINT, 5*time.Second)
			break
		}
		tg.Stop(syscall.SIGKILL, 2*time.Second)
		// trafgen dies when a flush of its TX ring meets a full socket send
		// buffer (EAGAIN). That happens when the other end's XDP ring backs
		// up for a moment: 256 queued skbs of ~830 bytes truesize fill the
		// default 212992-byte send buffer, which cannot be raised inside a
		// non-initial network namespace. Measure again with a fresh trafgen.
		if !errors.Is(err, errAborted) || attempt == maxAttempts {
			return tp, err
		}
		tp.TrafgenRestarts++
		if l.Log != nil {
			fmt.Fprintf(l.Log, "  trafgen aborted (%s); measuring again\n", abortMsg)
		}
	}
	// Let what is in flight land before the final count.
	if err := child.Sleep(ctx, 300*time.Millisecond); err != nil {
		return tp, err
	}
	end, err := counters.ReadLink(l.Receiver, l.Ifname)
	if err != nil {
		return tp, fmt.Errorf("receiver: %w", err)
	}

	dt := s1.at.Sub(s0.at).Seconds()
	tp.WindowSeconds = dt
	tp.RxPPS = float64(s1.rx.RxPackets-s0.rx.RxPackets) / dt
	dropped := float64(s1.tx.TxDropped - s0.tx.TxDropped)
	tp.OfferedPPS = (float64(s1.tx.TxPackets-s0.tx.TxPackets) + dropped) / dt
	tp.SenderTxDroppedPPS = dropped / dt
	tp.CPU = cpustat.Shares(s0.cpu, s1.cpu)
	if n := s1.rx.RxPackets - s0.rx.RxPackets; n > 0 && len(tp.CPU) > 0 {
		var cores float64
		for _, c := range tp.CPU {
			cores += c.Busy / 100
		}
		tp.CPUNsPerPacket = cores * dt * 1e9 / float64(n)
	}
	for k, v := range s1.probe {
		if v0, ok := s0.probe[k]; ok && v >= v0 {
			if tp.Probe == nil {
				tp.Probe = map[string]float64{}
			}
			tp.Probe[k] = float64(v-v0) / dt
		}
	}
	tp.Delivered = end.RxPackets - rxBase
	if tp.RxPPS == 0 {
		return tp, fmt.Errorf("the receiver got nothing (trafgen offered %.0f pps)", tp.OfferedPPS)
	}
	return tp, nil
}
