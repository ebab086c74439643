package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
)

// Throughput is one throughput window.
type Throughput struct {
	WindowSeconds float64 `json:"window_seconds"`
	// RxPPS is the figure: frames per second received by pod B's eth0
	// (its rx_packets, which for a veth counts what its peer handed over).
	RxPPS float64 `json:"rx_pps"`
	// OfferedPPS is what trafgen got into pod A's eth0: tx_packets plus
	// tx_dropped (frames the host end refused, e.g. a full XDP ring).
	OfferedPPS float64 `json:"offered_pps"`
	// PodATxDroppedPPS is the dropped part of OfferedPPS.
	PodATxDroppedPPS float64 `json:"pod_a_tx_dropped_pps"`
	// CPU is how each CPU spent the window.
	CPU []CPUShare `json:"cpu"`
	// CPUNsPerPacket is the whole machine's busy CPU time over the window
	// divided by the frames pod B received: trafgen, the forwarding and
	// pod B's stack together. Lower is more efficient.
	CPUNsPerPacket float64 `json:"cpu_ns_per_packet"`
	// Delivered counts every frame pod B received from the variant's start
	// to after trafgen stopped; the variant's own counters must match it.
	Delivered uint64 `json:"delivered_total"`
	// TrafgenExitedOnSIGINT is false if trafgen had to be killed.
	TrafgenExitedOnSIGINT bool `json:"trafgen_exited_on_sigint"`
	// TrafgenRestarts counts measurements thrown away because trafgen
	// aborted (see throughput).
	TrafgenRestarts int `json:"trafgen_restarts"`
}

const (
	maxTrafgenAttempts = 3
	trafgenAbortMsg    = "Flushing TX_RING failed: Resource temporarily unavailable"
)

var errTrafgenAborted = errors.New("trafgen aborted: " + trafgenAbortMsg)

// startTrafgen starts trafgen in pod A sending the benchmark frame as fast as
// it can. taskset pins trafgen's parent; --cpus 1 makes it fork one worker,
// which it pins to CPU 0 itself. --no-sock-mem and --notouch-irq keep it
// from retuning socket memory and IRQ affinities. trafgen's parent does not
// pass SIGINT on to its worker, so it is stopped through its process group,
// as a terminal's ^C would.
func (t *topo) startTrafgen(ctx context.Context) (*child.Proc, error) {
	tg, err := t.procs.Start("trafgen", t.podA, "taskset", "-c", "0",
		"trafgen", "--cpus", "1", "--no-sock-mem", "--notouch-irq", "--dev", "eth0", "--conf", t.trafgenConf)
	if err != nil {
		return nil, err
	}
	if err := tg.WaitFor(ctx, "Running!", 10*time.Second, func(o, e string) bool { return strings.Contains(o+e, "Running!") }); err != nil {
		tg.Stop(syscall.SIGKILL, 2*time.Second)
		return nil, fmt.Errorf("start trafgen: %w", err)
	}
	return tg, nil
}

// window samples the counters after warmup and again after window, and
// checks that trafgen ran all along.
func (t *topo) window(ctx context.Context, tg *child.Proc, warmup, window time.Duration) (s0, s1 sample, err error) {
	if err := child.Sleep(ctx, warmup); err != nil {
		return s0, s1, err
	}
	if s0, err = t.sample(); err != nil {
		return s0, s1, err
	}
	if err := child.Sleep(ctx, window); err != nil {
		return s0, s1, err
	}
	if s1, err = t.sample(); err != nil {
		return s0, s1, err
	}
	if tg.Exited() {
		if strings.Contains(tg.Stderr()+tg.Stdout(), trafgenAbortMsg) {
			return s0, s1, errTrafgenAborted
		}
		return s0, s1, fmt.Errorf("trafgen exited during the measurement (%v)%s", tg.Err(), tg.Tail())
	}
	return s0, s1, nil
}

// sample is every counter read at one instant.
type sample struct {
	at   time.Time
	a, b linkStats
	cpu  []cpuTimes
}

func (t *topo) sample() (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.a, err = stats(t.podANL, "eth0"); err != nil {
		return s, fmt.Errorf("pod A: %w", err)
	}
	if s.b, err = stats(t.podBN, "eth0"); err != nil {
		return s, fmt.Errorf("pod B: %w", err)
	}
	s.cpu, _ = readCPUTimes() // CPU figures are informative; never fail a run for them
	return s, nil
}

// throughput runs trafgen in pod A and measures what pod B receives over
// window, after warmup. podB0 is pod B's rx_packets when the variant
// started.
func (t *topo) throughput(ctx context.Context, podB0 uint64, warmup, window time.Duration) (Throughput, error) {
	var tp Throughput
	var s0, s1 sample
	for attempt := 1; ; attempt++ {
		tg, err := t.startTrafgen(ctx)
		if err != nil {
			return tp, err
		}
		s0, s1, err = t.window(ctx, tg, warmup, window)
		if err == nil {
			tp.TrafgenExitedOnSIGINT = tg.Stop(syscall.SIGINT, 5*time.Second)
			break
		}
		tg.Stop(syscall.SIGKILL, 2*time.Second)
		// trafgen dies when a flush of its TX ring meets a full socket send
		// buffer (EAGAIN). That happens when the host end's XDP ring backs
		// up for a moment: 256 queued skbs of ~830 bytes truesize fill the
		// default 212992-byte send buffer, which cannot be raised inside a
		// non-initial network namespace. Measure again with a fresh trafgen.
		if !errors.Is(err, errTrafgenAborted) || attempt == maxTrafgenAttempts {
			return tp, err
		}
		tp.TrafgenRestarts++
		fmt.Fprintf(t.logw, "  trafgen aborted (%s); measuring again\n", trafgenAbortMsg)
	}
	// Let what is in flight land before the final count.
	if err := child.Sleep(ctx, 300*time.Millisecond); err != nil {
		return tp, err
	}
	end, err := stats(t.podBN, "eth0")
	if err != nil {
		return tp, fmt.Errorf("pod B: %w", err)
	}

	dt := s1.at.Sub(s0.at).Seconds()
	tp.WindowSeconds = dt
	tp.RxPPS = float64(s1.b.RxPackets-s0.b.RxPackets) / dt
	dropped := float64(s1.a.TxDropped - s0.a.TxDropped)
	tp.OfferedPPS = (float64(s1.a.TxPackets-s0.a.TxPackets) + dropped) / dt
	tp.PodATxDroppedPPS = dropped / dt
	tp.CPU = shares(s0.cpu, s1.cpu)
	if n := s1.b.RxPackets - s0.b.RxPackets; n > 0 && len(tp.CPU) > 0 {
		var cores float64
		for _, c := range tp.CPU {
			cores += c.Busy / 100
		}
		tp.CPUNsPerPacket = cores * dt * 1e9 / float64(n)
	}
	tp.Delivered = end.RxPackets - podB0
	if tp.RxPPS == 0 {
		return tp, fmt.Errorf("pod B received nothing (trafgen offered %.0f pps)", tp.OfferedPPS)
	}
	return tp, nil
}

// cpuTimes is one CPU's line of /proc/stat, in ticks: user, nice, system,
// idle, iowait, irq, softirq, steal.
type cpuTimes [8]uint64

func (c cpuTimes) total() (n uint64) {
	for _, v := range c {
		n += v
	}
	return n
}

func readCPUTimes() ([]cpuTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	var cpus []cpuTimes
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var c cpuTimes
		for i := range c { // guest times, after steal, are already in user and nice
			c[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		cpus = append(cpus, c)
	}
	return cpus, nil
}

// CPUShare is how one CPU spent a window, in percent.
type CPUShare struct {
	Busy    float64 `json:"busy"` // everything but idle and iowait
	User    float64 `json:"user"` // user + nice
	System  float64 `json:"system"`
	Softirq float64 `json:"softirq"` // irq + softirq
	Steal   float64 `json:"steal"`   // taken by the hypervisor
}

func shares(a, b []cpuTimes) []CPUShare {
	if len(a) != len(b) || len(a) == 0 {
		return nil
	}
	out := make([]CPUShare, len(a))
	for i := range a {
		var d cpuTimes
		for j := range d {
			d[j] = b[i][j] - a[i][j]
		}
		tot := float64(d.total())
		if tot == 0 {
			continue
		}
		pct := func(v uint64) float64 { return 100 * float64(v) / tot }
		out[i] = CPUShare{
			Busy:    pct(d.total() - d[3] - d[4]),
			User:    pct(d[0] + d[1]),
			System:  pct(d[2]),
			Softirq: pct(d[5] + d[6]),
			Steal:   pct(d[7]),
		}
	}
	return out
}

// Latency is one sockperf ping-pong run: 64-byte UDP messages from pod A to
// a sockperf server in pod B and back; half round trips, in microseconds,
// as sockperf reports them.
type Latency struct {
	Seconds  int     `json:"seconds"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p99_9_us"`
	AvgUs    float64 `json:"avg_us"`
	MinUs    float64 `json:"min_us"`
	MaxUs    float64 `json:"max_us"`
	Samples  uint64  `json:"observations"`
	Dropped  uint64  `json:"dropped_messages"`
	ServerOK bool    `json:"server_exited_on_sigint"`
}

// latency runs a sockperf server in pod B and a ping-pong client in pod A.
func (t *topo) latency(ctx context.Context, seconds int) (Latency, error) {
	l := Latency{Seconds: seconds}
	srv, err := t.procs.Start("sockperf server", t.podB, "sockperf", "server", "-i", podBIP.String(), "-p", strconv.Itoa(sockperfPort))
	if err != nil {
		return l, err
	}
	defer srv.Stop(syscall.SIGKILL, 2*time.Second)
	if err := srv.WaitFor(ctx, "listening", 10*time.Second, func(o, e string) bool { return strings.Contains(o+e, "block on socket") }); err != nil {
		return l, fmt.Errorf("start sockperf server: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	out, err := child.Run(cctx, t.podA, "sockperf", "ping-pong", "-i", podBIP.String(), "-p", strconv.Itoa(sockperfPort),
		"-t", strconv.Itoa(seconds), "-m", "64")
	if err != nil {
		return l, fmt.Errorf("sockperf ping-pong: %w", err)
	}
	l.ServerOK = srv.Stop(syscall.SIGINT, 3*time.Second)
	if err := parseSockperf(out, &l); err != nil {
		return l, fmt.Errorf("sockperf ping-pong: %w; output:\n%s", err, out)
	}
	return l, nil
}

var (
	ansiRe       = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	percentileRe = regexp.MustCompile(`percentile\s+([0-9.]+)\s*=\s*([0-9.]+)`)
	avgRe        = regexp.MustCompile(`avg-latency=([0-9.]+)`)
	minRe        = regexp.MustCompile(`<MIN> observation\s*=\s*([0-9.]+)`)
	maxRe        = regexp.MustCompile(`<MAX> observation\s*=\s*([0-9.]+)`)
	totalObsRe   = regexp.MustCompile(`Total (\d+) observations`)
	droppedRe    = regexp.MustCompile(`# dropped messages = (\d+)`)
)

// parseSockperf reads sockperf 3.7's ping-pong summary, e.g.
//
//	sockperf: ====> avg-latency=24.853 (std-dev=7.114)
//	sockperf: # dropped messages = 0; # duplicated messages = 0; ...
//	sockperf: Total 51290 observations; each percentile contains 512.90 observations
//	sockperf: ---> <MAX> observation =  798.210
//	sockperf: ---> percentile 99.999 =  717.820
//	sockperf: ---> percentile 99.900 =   41.396
//	sockperf: ---> percentile 99.000 =   32.032
//	sockperf: ---> percentile 50.000 =   25.217
//	sockperf: ---> <MIN> observation =    5.528
//
// (with ANSI colour codes around some lines).
func parseSockperf(out string, l *Latency) error {
	out = ansiRe.ReplaceAllString(out, "")
	pct := map[string]float64{}
	for _, m := range percentileRe.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		p, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		pct[strconv.FormatFloat(p, 'f', 3, 64)] = v
	}
	var ok bool
	if l.P50us, ok = pct["50.000"]; !ok {
		return fmt.Errorf("no percentile 50.000 line")
	}
	if l.P99us, ok = pct["99.000"]; !ok {
		return fmt.Errorf("no percentile 99.000 line")
	}
	if l.P999us, ok = pct["99.900"]; !ok {
		return fmt.Errorf("no percentile 99.900 line")
	}
	l.AvgUs = firstFloat(avgRe, out)
	l.MinUs = firstFloat(minRe, out)
	l.MaxUs = firstFloat(maxRe, out)
	l.Samples = uint64(firstFloat(totalObsRe, out))
	l.Dropped = uint64(firstFloat(droppedRe, out))
	return nil
}

func firstFloat(re *regexp.Regexp, s string) float64 {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
