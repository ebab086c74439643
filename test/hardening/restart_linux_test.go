package hardening_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// streamInterval is the gap between the datagrams of a stream: the
// resolution of the outage it measures.
const streamInterval = time.Millisecond

// stream is UDP from one pod to another at a fixed rate, each datagram
// carrying its sequence number; the receiver notes when each arrives.
type stream struct {
	sent     atomic.Int64
	sendErrs atomic.Int64

	mu       sync.Mutex
	arrivals []time.Time // guarded by mu
	seqs     []uint64    // guarded by mu; beside arrivals

	stopOnce sync.Once
	quit     chan struct{} // closed by stop: the sender ends
	sendDone chan struct{} // closed by the sender when it ends
	wg       sync.WaitGroup
	rx, tx   *net.UDPConn
}

// startStream opens a receiver in pod to and a sender in pod from (the
// sockets live in the pods' namespaces) and starts sending.
func startStream(t testing.TB, from, to *pod) *stream {
	t.Helper()
	s := &stream{quit: make(chan struct{}), sendDone: make(chan struct{})}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.ip4, 7777))
	to.ns.Do(t, func() (err error) {
		s.rx, err = net.ListenUDP("udp4", dst)
		return err
	})
	from.ns.Do(t, func() (err error) {
		s.tx, err = net.DialUDP("udp4", nil, dst)
		return err
	})
	t.Cleanup(s.stop)
	s.wg.Go(s.receive)
	s.wg.Go(s.send)
	return s
}

func (s *stream) send() {
	defer close(s.sendDone)
	var b [16]byte
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	for seq := uint64(0); ; seq++ {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		binary.BigEndian.PutUint64(b[:], seq)
		binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
		if _, err := s.tx.Write(b[:]); err != nil {
			s.sendErrs.Add(1) // e.g. the gateway's neighbour entry failed while ringnetd was down
		}
		s.sent.Add(1)
	}
}

func (s *stream) receive() {
	var b [64]byte
	for {
		n, err := s.rx.Read(b[:])
		now := time.Now()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 16 {
			continue
		}
		s.mu.Lock()
		s.arrivals = append(s.arrivals, now)
		s.seqs = append(s.seqs, binary.BigEndian.Uint64(b[:8]))
		s.mu.Unlock()
	}
}

// stop stops the sender, gives the last datagrams 200ms to arrive, and
// closes the receiver.
func (s *stream) stop() {
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.sendDone
		s.tx.Close()
		time.Sleep(200 * time.Millisecond)
		s.rx.Close()
		s.wg.Wait()
	})
}

// longestGap returns the longest time between two arrivals.
func (s *stream) longestGap() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g time.Duration
	for i := 1; i < len(s.arrivals); i++ {
		g = max(g, s.arrivals[i].Sub(s.arrivals[i-1]))
	}
	return g
}

// received returns how many datagrams arrived, and the last arrival.
func (s *stream) received() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.arrivals) == 0 {
		return 0, time.Time{}
	}
	return len(s.arrivals), s.arrivals[len(s.arrivals)-1]
}

// firstAfter returns the first arrival after t, and the sequence number it
// carried.
func (s *stream) firstAfter(t time.Time) (time.Time, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.arrivals, t, func(a, t time.Time) int { return a.Compare(t) })
	for ; i < len(s.arrivals); i++ {
		if s.arrivals[i].After(t) {
			return s.arrivals[i], s.seqs[i], true
		}
	}
	return time.Time{}, 0, false
}

// lastBefore returns the last arrival at or before t, and its sequence
// number.
func (s *stream) lastBefore(t time.Time) (time.Time, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.arrivals, t, func(a, t time.Time) int { return a.Compare(t) })
	for i = min(i, len(s.arrivals)-1); i >= 0; i-- {
		if !s.arrivals[i].After(t) {
			return s.arrivals[i], s.seqs[i], true
		}
	}
	return time.Time{}, 0, false
}

// waitFlowing waits until datagrams have arrived for a while without a
// gap longer than 50 intervals.
func (s *stream) waitFlowing(tb testing.TB, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	since := time.Time{}
	for time.Now().Before(deadline) {
		_, last := s.received()
		switch {
		case last.IsZero() || time.Since(last) > 50*streamInterval:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= d:
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	n, _ := s.received()
	tb.Fatalf("the stream is not flowing: %d of %d datagrams arrived (%d send errors)", n, s.sent.Load(), s.sendErrs.Load())
}

// restartTimes is what one kill and restart of ringnetd took.
type restartTimes struct {
	Ready       time.Duration // from the exec of the new ringnetd to its API serving
	Resume      time.Duration // from the exec to the first datagram delivered
	Gap         time.Duration // from the last datagram before the kill to the first after the restart
	Down        time.Duration // from the kill to the exec of the new ringnetd (the supervisor's share)
	LostInOrder uint64        // sequence numbers missing across the gap
}

// restart kills ringnetd with SIGKILL while s flows, starts it again at
// once, as a supervisor would, and measures how long the traffic stopped.
func (n *node) restart(tb testing.TB, s *stream) restartTimes {
	tb.Helper()
	killed := time.Now()
	n.kill()
	began := time.Now()
	ready := n.start()
	var r restartTimes
	r.Ready, r.Down = ready, began.Sub(killed)
	deadline := time.Now().Add(20 * time.Second)
	for {
		first, seqAfter, ok := s.firstAfter(began)
		if ok {
			last, seqBefore, _ := s.lastBefore(killed)
			r.Resume, r.Gap, r.LostInOrder = first.Sub(began), first.Sub(last), seqAfter-seqBefore-1
			return r
		}
		if time.Now().After(deadline) {
			cnt, _ := s.received()
			tb.Fatalf("traffic did not resume within 20s of the restart: %d of %d datagrams arrived in all, %d send errors\nringnetd's log ends:\n%s",
				cnt, s.sent.Load(), s.sendErrs.Load(), n.logTail(20))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRestartUnderTraffic kills ringnetd with SIGKILL while two pods
// stream UDP through it and six more sit idle, restarts it on the same
// state directory, three times, and checks that every pod keeps its
// addresses (CNI CHECK, and eth0 as ADD left it) and that the traffic
// resumes. It logs how long the traffic stopped; the figures are
// BenchmarkRestartResume's to report, not this test's to judge.
func TestRestartUnderTraffic(t *testing.T) {
	n := newNode(t)
	pods := []*pod{n.addPod(t, "restart-a"), n.addPod(t, "restart-b")}
	for i := range 6 {
		pods = append(pods, n.addPod(t, fmt.Sprintf("idle-%d", i)))
	}
	a, b := pods[0], pods[1]
	pingOnce(t, a, b) // resolves the gateway on both sides
	s := startStream(t, a, b)
	s.waitFlowing(t, 500*time.Millisecond)

	const restarts = 3
	for i := range restarts {
		r := n.restart(t, s)
		t.Logf("restart %d: API serving %v after the exec; traffic back %v after the exec; gap %v from the last datagram before the kill (%d datagrams lost; the kill took %v)",
			i+1, r.Ready.Round(time.Millisecond), r.Resume.Round(time.Millisecond), r.Gap.Round(time.Millisecond), r.LostInOrder, r.Down.Round(time.Millisecond))
		s.waitFlowing(t, 300*time.Millisecond)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, p := range pods {
			if err := n.check(ctx, p.id, p.ns.Path); err != nil {
				t.Errorf("restart %d: CNI CHECK %s: %v", i+1, p.id, err)
			}
			if got, want := p.eth0Addrs(t), []netip.Addr{p.ip4, p.ip6}; !sameAddrs(got, want) {
				t.Errorf("restart %d: pod %s's eth0 has %v, ADD gave it %v", i+1, p.id, got, want)
			}
		}
		st, err := n.api.Status(ctx)
		cancel()
		if err != nil || st.Allocated != len(pods) {
			t.Errorf("restart %d: status %+v, %v; want the %d pods' allocations", i+1, st, err, len(pods))
		}
	}
	got, _ := s.received()
	t.Logf("stream: %d datagrams sent, %d received, %d send errors", s.sent.Load(), got, s.sendErrs.Load())
	pingOnce(t, pods[len(pods)-1], a)
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

// BenchmarkRestartResume kills ringnetd with SIGKILL under a 1000
// datagram/s pod-to-pod UDP stream and restarts it at once, b.N times, and
// reports the means: resume-ms, from the restart (the exec) to the first
// datagram delivered (the target: under 1 s); ready-ms, from the
// exec to the API serving; gap-ms, from the last datagram before the kill
// to the first after; kill-ms, from the SIGKILL until the process is gone
// (the kernel closing its AF_XDP sockets and XDP links, which a supervisor
// waits for); and the worst resume. The node has 2 pods, or 32
// (the streaming pair restored last: their IDs sort after the idle ones'),
// since ringnetd re-attaches pods one after another. Run it with a count:
// -benchtime 10x.
func BenchmarkRestartResume(b *testing.B) {
	for _, pods := range []int{2, 32} {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			n := newNode(b)
			for i := range pods - 2 {
				n.addPod(b, fmt.Sprintf("idle-%02d", i))
			}
			pa, pb := n.addPod(b, "stream-a"), n.addPod(b, "stream-b")
			s := startStream(b, pa, pb)
			s.waitFlowing(b, 500*time.Millisecond)
			var ready, resume, gap, down, worst time.Duration
			b.ResetTimer()
			for range b.N {
				r := n.restart(b, s)
				ready, resume, gap, down = ready+r.Ready, resume+r.Resume, gap+r.Gap, down+r.Down
				worst = max(worst, r.Resume)
				b.StopTimer()
				s.waitFlowing(b, 300*time.Millisecond)
				b.StartTimer()
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
			b.ReportMetric(ms(resume), "resume-ms")
			b.ReportMetric(ms(ready), "ready-ms")
			b.ReportMetric(ms(gap), "gap-ms")
			b.ReportMetric(ms(down), "kill-ms")
			b.ReportMetric(float64(worst)/float64(time.Millisecond), "worst-resume-ms")
		})
	}
}
