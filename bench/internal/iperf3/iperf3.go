// Package iperf3 measures TCP throughput between two network namespaces
// with iperf3: a one-off server in one, a client sending one stream for a
// few seconds in the other, and the client's JSON summary read back,
// together with how the machine's CPUs were spent meanwhile (a TCP stream
// on two cores is usually limited by one of them).
package iperf3

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
)

// TCP is one iperf3 run of one TCP stream.
type TCP struct {
	Seconds     int     `json:"seconds"`
	Gbps        float64 `json:"received_gbit_per_s"` // what the server received
	SentGbps    float64 `json:"sent_gbit_per_s"`
	Retransmits int     `json:"retransmits"`
	// SenderCPU and ReceiverCPU are iperf3's own figures: the share of one
	// core each end's process used, user and system time together (the
	// softirq work of the path is not in them).
	SenderCPU   float64 `json:"sender_cpu_percent"`
	ReceiverCPU float64 `json:"receiver_cpu_percent"`
	// CPU is how each CPU of the machine spent the run.
	CPU []cpustat.Share `json:"cpu"`
}

// result is the part of iperf3 -J's output that TCP holds.
type result struct {
	End struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			Host   float64 `json:"host_total"`
			Remote float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
	Error string `json:"error"`
}

// Run starts a one-off iperf3 server on addr:port in serverNS and sends
// one TCP stream to it from clientNS for seconds.
func Run(ctx context.Context, procs *child.Group, serverNS, clientNS string, addr netip.Addr, port, seconds int) (TCP, error) {
	r := TCP{Seconds: seconds}
	// --forceflush: iperf3 buffers its output when it is not a terminal,
	// and the "listening" line would come only at exit.
	srv, err := procs.StartReady(ctx, "iperf3 server", serverNS, "Server listening", 10*time.Second,
		"iperf3", "-s", "-1", "--forceflush", "-B", addr.String(), "-p", strconv.Itoa(port))
	if err != nil {
		return r, err
	}
	defer srv.Stop(syscall.SIGKILL, 2*time.Second)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	cpu0, _ := cpustat.Read()
	out, err := child.Run(cctx, clientNS, "iperf3", "-J", "-c", addr.String(), "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(seconds), "--connect-timeout", "5000")
	cpu1, _ := cpustat.Read()
	var res result
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		if err != nil {
			return r, fmt.Errorf("iperf3 client: %w", err)
		}
		return r, fmt.Errorf("iperf3 client: unreadable output: %w: %s", jerr, child.Tail(out))
	}
	if res.Error != "" {
		return r, fmt.Errorf("iperf3 client: %s", res.Error)
	}
	if err != nil {
		return r, fmt.Errorf("iperf3 client: %w", err)
	}
	e := res.End
	r.Gbps, r.SentGbps = e.SumReceived.BitsPerSecond/1e9, e.SumSent.BitsPerSecond/1e9
	r.Retransmits = e.SumSent.Retransmits
	r.SenderCPU, r.ReceiverCPU = e.CPU.Host, e.CPU.Remote
	r.CPU = cpustat.Shares(cpu0, cpu1)
	if r.Gbps == 0 {
		return r, fmt.Errorf("iperf3: nothing received in %d s", seconds)
	}
	return r, nil
}
