package hardening_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ringnet/ringnet/internal/topo"
)

// The good traffic of TestMalformedAtRate: TCP transfers echoed by a
// topo.Greeter, and ping.

// transferResult is what transferWhile did.
type transferResult struct {
	done    int           // transfers that completed intact
	took    time.Duration // their time in all
	slowest time.Duration
	err     error // why the last one failed, if it did
}

func (r transferResult) rate() float64 {
	if r.took == 0 {
		return 0
	}
	return float64(r.done*transferBytes) / r.took.Seconds()
}

// transferWhile sends transferBytes of random data from pod p to a
// topo.Greeter at to, which echoes it, every transferEvery (or as soon as
// the last is done, if it took longer) until stop, and checks that each
// came back intact; it stops at the first that does not.
func transferWhile(p *pod, to netip.AddrPort, stop time.Time) transferResult {
	var r transferResult
	data := make([]byte, transferBytes)
	rng := rand.NewChaCha8([32]byte{1})
	next := time.Now()
	for i := 0; i == 0 || next.Before(stop); i++ {
		time.Sleep(time.Until(next))
		next = next.Add(transferEvery)
		rng.Read(data)
		t0 := time.Now()
		if err := echo(p, to, data); err != nil {
			r.err = err
			return r
		}
		took := time.Since(t0)
		r.done++
		r.took += took
		r.slowest = max(r.slowest, took)
	}
	return r
}

// echo sends data over a new connection from pod p to a topo.Greeter at
// to and checks that what comes back is the same.
func echo(p *pod, to netip.AddrPort, data []byte) error {
	s, err := topo.Dial(p.ns.Name, to)
	if err != nil {
		return err
	}
	defer s.Conn.Close()
	s.Conn.SetDeadline(time.Now().Add(time.Minute))
	sent := make(chan error, 1)
	go func() {
		_, err := s.Conn.Write(data)
		if err == nil {
			err = s.Conn.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	got, err := io.ReadAll(s.Conn) // the greeter closes once it has echoed all
	if serr := <-sent; err == nil {
		err = serr
	}
	if err == nil && !bytes.Equal(got, data) {
		return fmt.Errorf("%d bytes came back of %d sent, the first different at byte %d", len(got), len(data), firstDiff(got, data))
	}
	return err
}

// firstDiff is the first index at which a and b differ, or the shorter's
// length.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// pings is ping running in a pod for a while.
type pings struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

type pingResult struct {
	sent, received int
	avg, max       string // ms, as ping says
	err            error
}

// startPings pings dst from pod p ten times a second for d.
func startPings(p *pod, dst netip.Addr, d time.Duration) *pings {
	count := max(1, int(d/(100*time.Millisecond)))
	ps := &pings{done: make(chan error, 1)}
	ps.cmd = topo.Command(context.Background(), p.ns.Name, "ping", "-n", "-q", "-i", "0.1", "-W", "1", "-c", strconv.Itoa(count), dst.String())
	ps.cmd.Stdout, ps.cmd.Stderr = &ps.out, &ps.out
	if err := ps.cmd.Start(); err != nil {
		ps.done <- err
		return ps
	}
	go func() { ps.done <- ps.cmd.Wait() }()
	return ps
}

var (
	pingCounts = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingRTT    = regexp.MustCompile(`= [\d.]+/([\d.]+)/([\d.]+)/`)
)

// wait waits for ping to finish and reads its summary. Ping's exit status
// (1 when a reply was missing) is not an error here.
func (ps *pings) wait() pingResult {
	err := <-ps.done
	var r pingResult
	m := pingCounts.FindStringSubmatch(ps.out.String())
	if m == nil {
		r.err = fmt.Errorf("%v: %s", err, strings.TrimSpace(ps.out.String()))
		var ee *exec.ExitError
		if err == nil || errors.As(err, &ee) {
			r.err = fmt.Errorf("no summary from ping: %s", strings.TrimSpace(ps.out.String()))
		}
		return r
	}
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	if m := pingRTT.FindStringSubmatch(ps.out.String()); m != nil {
		r.avg, r.max = m[1]+" ms", m[2]+" ms"
	}
	return r
}
