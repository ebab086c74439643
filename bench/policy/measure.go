package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// RunResult is one variant with one rule count in one round: installing
// the rules, the proof that they are enforced, and both loads. A part
// that fails says why in Errors; the loads still run.
type RunResult struct {
	Round int `json:"round"`
	// ApplySeconds is how long installing the rules took: iptables-restore,
	// or ringnetd's reload of the cluster file on both nodes (0: they were
	// installed already).
	ApplySeconds float64 `json:"apply_seconds"`
	// Errors says what failed outside the loads: installing the rules, or
	// the proof that they are enforced.
	Errors []string      `json:"errors,omitempty"`
	Loads  []*LoadResult `json:"loads"`
}

// LoadResult is one load's measurement.
type LoadResult struct {
	Load   string   `json:"load"` // a load's ID
	Errors []string `json:"errors,omitempty"`
	// Noise is what other work did meanwhile; a disturbed load is left
	// out of the summary.
	cpustat.Noise

	Throughput *trafgen.Throughput `json:"throughput,omitempty"`
	// PathOK says the counters proved the load went the variant's way
	// (setup.checkLoad, testbed.Bed.CheckPath); only then does the summary
	// count the figure.
	PathOK bool `json:"path_ok"`
	// Checked is how many packets n2's datapath checked against the rules
	// over the load (setup.checked); Evicted how many tracked connections
	// it dropped to make room (setup.evicted: for ringnet a lower bound).
	Checked uint64 `json:"n2_checked"`
	Evicted uint64 `json:"n2_evicted"`
	// Tracked is how many connections n2's datapath tracked after the
	// load (setup.tracked): with new flows, a full table.
	Tracked uint64 `json:"n2_tracked_after"`
	// Counters are the path's counters over the load (testbed.Bed.Snapshot
	// and the variant's own); Losses the part of them that counts frames
	// lost.
	Counters map[string]uint64 `json:"counters,omitempty"`
	Losses   map[string]uint64 `json:"losses,omitempty"`
}

// failed reports whether any part of the run failed.
func (res *RunResult) failed() bool {
	if len(res.Errors) > 0 || len(res.Loads) < len(loads) {
		return true
	}
	for _, l := range res.Loads {
		if len(l.Errors) > 0 {
			return true
		}
	}
	return false
}

// unit installs n rules on s if they are not there, and measures s with
// them.
func (r *runner) unit(ctx context.Context, s *setup, n int) *RunResult {
	res := &RunResult{}
	if s.rules != n {
		start := time.Now()
		if err := s.apply(ctx, n); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("install %d rules: %v", n, err))
			s.rules = 0 // whatever is there now, it is not what a later unit wants
			return res
		}
		res.ApplySeconds = time.Since(start).Seconds()
	}
	r.measure(ctx, s, res)
	return res
}

// measure proves that the rules are enforced, then runs both loads, each
// once the machine is quiet.
func (r *runner) measure(ctx context.Context, s *setup, res *RunResult) {
	d, err := s.Counted(ctx, func() error {
		if err := s.Probe(denyPort, probes); err != nil {
			return err
		}
		return child.Sleep(ctx, 200*time.Millisecond) // let them reach n2 and its counters
	})
	if err == nil {
		err = s.checkDenied(d)
	}
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("enforcement: %v", err))
	}
	for i, l := range loads {
		if ctx.Err() != nil {
			return
		}
		lr := &LoadResult{Load: l.ID}
		res.Loads = append(res.Loads, lr)
		lr.Noise = r.watch.Round(ctx, func() {
			if err := r.load(ctx, s, i, lr); err != nil {
				lr.Errors = append(lr.Errors, err.Error())
			}
		})
	}
}

// load runs load i: for one flow, the receiver answers first, so that
// the flow is established; then trafgen sends, and the path's counters
// must prove which way its frames went.
func (r *runner) load(ctx context.Context, s *setup, i int, lr *LoadResult) error {
	l := loads[i]
	if !l.NewFlows {
		if err := s.Answer(sinkPort); err != nil {
			return err
		}
	}
	tp, d, err := s.Load(ctx, &r.procs, s.confs[i], r.o.Warmup, r.o.Window, r.logw)
	if err != nil {
		return err
	}
	lr.Throughput, lr.Counters, lr.Losses = &tp, counters.NonZero(d), s.Losses(d)
	lr.Checked, lr.Evicted = s.checked(d), s.evicted(d, pipeline.DefaultConntrackCapacity)
	if lr.Tracked, err = s.tracked(ctx); err != nil {
		return err
	}
	_, werr := s.CheckPath(d, tp.Delivered, trafgen.FrameLen)
	err = errors.Join(werr, s.checkLoad(l, d, tp.Delivered))
	lr.PathOK = err == nil
	return err
}

// lines is the run's log entry.
func (res *RunResult) lines(v variant, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "round %d (%s) %-15s %5d rules", res.Round, v.ID, v.Name, n)
	if res.ApplySeconds > 0 {
		fmt.Fprintf(&b, " (installed in %.2fs)", res.ApplySeconds)
	}
	for _, lr := range res.Loads {
		if tp := lr.Throughput; tp != nil {
			fmt.Fprintf(&b, "  %s: rx %7.0f pps offered %7.0f, %.2f checked/pkt", lr.Load, tp.RxPPS, tp.OfferedPPS, float64(lr.Checked)/float64(max(tp.Delivered, 1)))
		}
		if lr.Disturbed {
			fmt.Fprintf(&b, " [disturbed: machine %.0f%% busy before, other work %.0f%% of a core during]", lr.BackgroundBusy, lr.OtherWork)
		}
	}
	b.WriteByte('\n')
	for _, e := range res.Errors {
		fmt.Fprintf(&b, "  FAILED: %s\n", e)
	}
	for _, lr := range res.Loads {
		for _, e := range lr.Errors {
			fmt.Fprintf(&b, "  FAILED (%s): %s\n", lr.Load, e)
		}
	}
	return b.String()
}
