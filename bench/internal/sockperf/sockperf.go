// Package sockperf measures request/response latency between two network
// namespaces with sockperf: a server in one, a ping-pong client of 64-byte
// UDP messages in the other, and the client's percentiles parsed from its
// summary. Latencies are half round trips in microseconds, as sockperf
// reports them.
package sockperf

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
)

// Latency is one ping-pong run.
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

// PingPong runs a sockperf server on addr:port in serverNS and a ping-pong
// client of 64-byte messages in clientNS for seconds.
func PingPong(ctx context.Context, procs *child.Group, serverNS, clientNS string, addr netip.Addr, port, seconds int) (Latency, error) {
	l := Latency{Seconds: seconds}
	srv, err := procs.StartReady(ctx, "sockperf server", serverNS, "block on socket", 10*time.Second,
		"sockperf", "server", "-i", addr.String(), "-p", strconv.Itoa(port))
	if err != nil {
		return l, err
	}
	defer srv.Stop(syscall.SIGKILL, 2*time.Second)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	out, err := child.Run(cctx, clientNS, "sockperf", "ping-pong", "-i", addr.String(), "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(seconds), "-m", "64")
	if err != nil {
		return l, fmt.Errorf("sockperf ping-pong: %w", err)
	}
	l.ServerOK = srv.Stop(syscall.SIGINT, 3*time.Second)
	if err := Parse(out, &l); err != nil {
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

// Parse reads sockperf 3.7's ping-pong summary into l, e.g.
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
func Parse(out string, l *Latency) error {
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
