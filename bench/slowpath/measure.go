package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
)

// ringnetd is a running daemon in the node namespace.
type ringnetd struct {
	t *topo
	p *child.Proc
}

func (t *topo) startRingnetd(ctx context.Context, flags ...string) (*ringnetd, error) {
	// The pod's neighbour entry for the gateway would make ringnetd's ARP
	// answer moot; leave the pods as a CNI would.
	_, _ = child.Run(ctx, t.pods[0].ns, "ip", "neigh", "del", gwIP, "dev", "eth0")
	args := append(append([]string{t.bin.ringnetd, "--pods", t.podsFile}, t.extra...), flags...)
	p, err := t.procs.Start("ringnetd", t.node, args...)
	if err != nil {
		return nil, err
	}
	r := &ringnetd{t: t, p: p}
	if err := p.WaitForText(ctx, "msg=forwarding", 20*time.Second); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

func (r *ringnetd) stop() error {
	if !r.p.Stop(syscall.SIGTERM, 15*time.Second) {
		return fmt.Errorf("ringnetd did not exit within 15s of SIGTERM: %s", child.Tail(r.p.Output()))
	}
	return nil
}

// counters asks for ringnetd's counters (SIGUSR1) and parses the block:
// "reason NAME N" as NAME, "port P k=v" as P.k.
func (r *ringnetd) counters(ctx context.Context) (map[string]uint64, error) {
	before := strings.Count(r.p.Output(), "counters\n")
	r.p.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(r.p.Output(), "counters\n") == before {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no counters 5s after SIGUSR1")
		}
		if err := child.Sleep(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
	child.Sleep(ctx, 50*time.Millisecond)
	out := r.p.Output()
	out = out[strings.LastIndex(out, "counters\n"):]
	c := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "reason":
			c[f[1]], _ = strconv.ParseUint(f[2], 10, 64)
		case len(f) > 2 && f[0] == "port":
			for _, kv := range f[2:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					c[f[1]+"."+k], _ = strconv.ParseUint(v, 10, 64)
				}
			}
		}
	}
	return c, nil
}

// iperf3 runs a TCP test from client namespace to server namespace's addr
// for seconds and returns the received rate in Gbit/s.
func (t *topo) iperf3(ctx context.Context, serverNS, clientNS, addr string, seconds int, reverse bool) (float64, error) {
	srv, err := t.procs.Start("iperf3 server", serverNS, "iperf3", "-s", "-1", "-B", addr, "-p", strconv.Itoa(iperfA))
	if err != nil {
		return 0, err
	}
	defer srv.Stop(syscall.SIGKILL, time.Second)
	// iperf3 buffers its output when it is not a terminal: give it time to
	// listen rather than waiting for it to say so.
	if err := child.Sleep(ctx, 300*time.Millisecond); err != nil {
		return 0, err
	}
	args := []string{"iperf3", "-J", "-c", addr, "-p", strconv.Itoa(iperfA), "-t", strconv.Itoa(seconds)}
	if reverse {
		args = append(args, "-R")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+20)*time.Second)
	defer cancel()
	out, err := child.Run(cctx, clientNS, args...)
	if err != nil {
		return 0, err
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3: %q, %v bit/s", res.Error, res.End.SumReceived.BitsPerSecond)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// Latency is a sockperf ping-pong result: half round trips in µs.
type Latency struct {
	P50, P99, P999 float64
}

var percentile = regexp.MustCompile(`percentile\s+([0-9.]+)\s*=\s*([0-9.]+)`)

// sockperf runs a UDP ping-pong of 64-byte messages from clientNS to a
// server at addr in serverNS.
func (t *topo) sockperf(ctx context.Context, serverNS, clientNS, addr string, seconds int) (Latency, error) {
	var l Latency
	srv, err := t.procs.Start("sockperf server", serverNS, "sockperf", "server", "-i", addr, "-p", strconv.Itoa(sockPort))
	if err != nil {
		return l, err
	}
	defer srv.Stop(syscall.SIGKILL, time.Second)
	if err := srv.WaitForText(ctx, "block on socket", 5*time.Second); err != nil {
		return l, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+20)*time.Second)
	defer cancel()
	out, err := child.Run(cctx, clientNS, "sockperf", "ping-pong", "-i", addr, "-p", strconv.Itoa(sockPort),
		"-t", strconv.Itoa(seconds), "-m", "64")
	if err != nil {
		return l, err
	}
	out = regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(out, "")
	for _, m := range percentile.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "50.000":
			l.P50 = v
		case "99.000":
			l.P99 = v
		case "99.900":
			l.P999 = v
		}
	}
	if l.P50 == 0 {
		return l, fmt.Errorf("no percentiles in sockperf's output:\n%s", child.Tail(out))
	}
	return l, nil
}

// startFlood runs trafgen in pod C at rate pps, pinned to CPU 0.
func (t *topo) startFlood(ctx context.Context, pps int) (*child.Proc, error) {
	p, err := t.procs.Start("trafgen", t.pods[2].ns, "taskset", "-c", "0", "trafgen", "--cpus", "1",
		"--no-sock-mem", "--notouch-irq", "--dev", "eth0", "--conf", t.floodCfg, "--rate", fmt.Sprintf("%dpps", pps))
	if err != nil {
		return nil, err
	}
	if err := p.WaitForText(ctx, "Running!", 10*time.Second); err != nil {
		p.Stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return p, nil
}

// txPackets is a pod's eth0 tx_packets.
func (t *topo) txPackets(ctx context.Context, ns string) (uint64, error) {
	out, err := child.Run(ctx, ns, "cat", "/sys/class/net/eth0/statistics/tx_packets")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(out), 10, 64)
}
