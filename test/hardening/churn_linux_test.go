package hardening_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringnet/ringnet/internal/netnstest"
)

var (
	churnCycles   = flag.Int("churn", 200, "TestCNIChurn: pod ADD/DEL cycles (the issue's figure is 1000)")
	churnParallel = flag.Int("churn-parallel", 20, "TestCNIChurn: cycles run at once")
)

// Bounds on what a run of TestCNIChurn may leave grown. They are not
// timing figures: a leak of one port per cycle (an AF_XDP socket, a UMEM
// of several MiB, a goroutine) shows up far above them even at -churn 200.
const (
	churnRSSGrowthMiB  = 48 // RSS after the run over RSS after the warm-up
	churnThreadsGrowth = 16 // OS threads: Go keeps idle ones, but not one per pod
)

// TestCNIChurn adds and deletes pods through libcni and the real plugin,
// -churn-parallel at a time, -churn in all, while one steady pod streams
// UDP to another, none of which may be lost. Afterwards ringnetd must hold what it held before: no host veth,
// no allocation, no XDP program, no AF_XDP socket, the same file
// descriptors and goroutines, a sane number of threads and a bounded RSS.
// The run is two halves, so that growth that comes with every cycle (a
// leak) shows up as growth in the second half too.
func TestCNIChurn(t *testing.T) {
	n := newNode(t)
	a, b := n.addPod(t, "steady-a"), n.addPod(t, "steady-b")
	pingOnce(t, a, b)

	workers := max(1, *churnParallel)
	nss := make([]netnstest.NS, workers)
	for i := range nss {
		nss[i] = netnstest.New(t, "rnH")
	}
	var seq atomic.Int64
	// cycles runs count ADD/DEL cycles on the workers and returns the
	// latencies and the errors.
	cycles := func(count int) (adds, dels []time.Duration, errs []error) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := range workers {
			wg.Go(func() {
				for next.Add(1) <= int64(count) {
					id := fmt.Sprintf("churn-%d", seq.Add(1))
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					t0 := time.Now()
					ip4, ip6, err := n.add(ctx, id, nss[w].Path)
					t1 := time.Now()
					if err == nil && (!ip4.IsValid() || !ip6.IsValid()) {
						err = fmt.Errorf("addresses %v %v", ip4, ip6)
					}
					// DEL even after a failed ADD, as a runtime does.
					derr := n.del(ctx, id, nss[w].Path)
					t2 := time.Now()
					cancel()
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("ADD %s: %w", id, err))
					} else {
						adds = append(adds, t1.Sub(t0))
					}
					if derr != nil {
						errs = append(errs, fmt.Errorf("DEL %s: %w", id, derr))
					} else {
						dels = append(dels, t2.Sub(t1))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return adds, dels, errs
	}
	fail := func(phase string, errs []error) {
		t.Helper()
		if len(errs) > 0 {
			t.Fatalf("%s: %d CNI calls failed; the first: %v\nringnetd's log ends:\n%s", phase, len(errs), errs[0], n.logTail(30))
		}
	}

	// Warm-up: one cycle on every worker, so that what ringnetd makes once
	// (buffers, threads, connections) exists before the baseline.
	_, _, errs := cycles(workers)
	fail("warm-up", errs)
	base := n.quiet()
	t.Logf("baseline (2 steady pods, after %d warm-up cycles): %v", workers, base)
	steady := func(u usage) bool {
		return u.FDs <= base.FDs && u.XSKs == base.XSKs && len(u.HostVeths) == 2 && u.Goroutines <= base.Goroutines
	}

	s := startStream(t, a, b)
	s.waitFlowing(t, 300*time.Millisecond)
	total := max(2, *churnCycles)
	began := time.Now()
	adds, dels, errs := cycles(total / 2)
	fail("first half", errs)
	mid, _ := n.settle(steady)
	t.Logf("after %d cycles: %v", total/2, mid)
	adds2, dels2, errs := cycles(total - total/2)
	fail("second half", errs)
	elapsed := time.Since(began)
	adds, dels = append(adds, adds2...), append(dels, dels2...)
	end, ok := n.settle(steady)
	s.stop()
	got, _ := s.received()
	sent := int(s.sent.Load())
	t.Logf("after %d cycles: %v", total, end)
	t.Logf("%d ADD/DEL cycles, %d at once, in %v (%.1f cycles/s); ADD p50 %v p99 %v max %v; DEL p50 %v p99 %v max %v",
		total, workers, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(),
		pct(adds, 50), pct(adds, 99), pct(adds, 100), pct(dels, 50), pct(dels, 99), pct(dels, 100))
	t.Logf("steady pods during the churn: %d datagrams sent, %d received, %d send errors; longest gap %v",
		sent, got, s.sendErrs.Load(), s.longestGap().Round(time.Millisecond))

	if !ok {
		t.Errorf("ringnetd did not come back to its baseline within 10s:\n before %v\n after  %v", base, end)
	}
	if !slices.Equal(end.HostVeths, base.HostVeths) {
		t.Errorf("host veths in the node: %v, want the steady pods' %v", end.HostVeths, base.HostVeths)
	}
	if !slices.Equal(end.XDPLinks, base.XDPLinks) {
		t.Errorf("links with XDP programs: %v, want %v", end.XDPLinks, base.XDPLinks)
	}
	if end.BPFProgs != base.BPFProgs || end.BPFMaps != base.BPFMaps || end.BPFLinks != base.BPFLinks {
		t.Errorf("ringnetd holds %d BPF programs, %d maps, %d links; before the churn %d, %d, %d",
			end.BPFProgs, end.BPFMaps, end.BPFLinks, base.BPFProgs, base.BPFMaps, base.BPFLinks)
	}
	if end.XSKs != base.XSKs {
		t.Errorf("%d AF_XDP sockets in the node's namespace, before the churn %d", end.XSKs, base.XSKs)
	}
	if end.FDs > base.FDs || end.Sockets > base.Sockets {
		t.Errorf("ringnetd holds %d fds (%d sockets), before the churn %d (%d)", end.FDs, end.Sockets, base.FDs, base.Sockets)
	}
	if end.Goroutines > base.Goroutines {
		t.Errorf("ringnetd runs %d goroutines, before the churn %d", end.Goroutines, base.Goroutines)
	}
	if grown := end.Threads - base.Threads; grown > churnThreadsGrowth || end.Threads-mid.Threads > churnThreadsGrowth/2 {
		t.Errorf("ringnetd's threads: %d before, %d half way, %d after", base.Threads, mid.Threads, end.Threads)
	}
	if grown := (end.RSSKiB - base.RSSKiB) / 1024; grown > churnRSSGrowthMiB {
		t.Errorf("ringnetd's RSS grew by %d MiB over the run (bound %d MiB): %d KiB before, %d half way, %d after",
			grown, churnRSSGrowthMiB, base.RSSKiB, mid.RSSKiB, end.RSSKiB)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Allocated != 2 {
		t.Errorf("ringnetd has %d allocations, want the 2 steady pods'", st.Allocated)
	}
	for _, p := range []*pod{a, b} {
		if err := n.check(ctx, p.id, p.ns.Path); err != nil {
			t.Errorf("CHECK %s after the churn: %v", p.id, err)
		}
	}
	if got != sent || s.sendErrs.Load() != 0 {
		t.Errorf("steady pods: %d of %d datagrams arrived during the churn (%d send errors)", got, sent, s.sendErrs.Load())
	}
	pingOnce(t, a, b)
}

// pct is the p-th percentile of ds (p 100: the largest).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(100 * time.Microsecond)
}

func pingOnce(t *testing.T, from, to *pod) {
	t.Helper()
	if out, err := netnstest.Output(from.ns.Name, "ping", "-c", "2", "-i", "0.2", "-W", "2", to.ip4.String()); err != nil {
		t.Fatalf("ping %s -> %s: %v\n%s", from.id, to.id, err, out)
	}
}
