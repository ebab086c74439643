package main

import (
	"strings"
	"testing"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

func TestRatiosAndLimits(t *testing.T) {
	st := func(v float64) *figure.Stat { return &figure.Stat{Median: v, Min: v, Max: v, N: 1} }
	r := &Report{Variants: []*VariantReport{
		{Variant: program.Variant{ID: "b"}, Summary: Summary{RxPPS: st(100e3), OfferedPPS: st(100e3), P99us: st(40), TCPGbps: st(3),
			LoadCPU: []cpustat.Share{{Busy: 100, Softirq: 80}, {Busy: 10}}}},
		{Variant: program.Variant{ID: "d"}, Summary: Summary{RxPPS: st(160e3), OfferedPPS: st(320e3), P99us: st(60), TCPGbps: st(1.2),
			LoadLosses: map[string]float64{"n1.port.pod.xsk_rx_ring_full": 5e5}}},
	}}
	got := r.ratios()
	if len(got) != 3 {
		t.Fatalf("ratios %+v, want the three d/b ones", got)
	}
	for i, want := range []program.Ratio{{Value: 1.6, Met: true}, {Value: 1.5, Met: false}, {Value: 0.4, Met: false}} {
		if d := got[i].Value - want.Value; d > 1e-9 || d < -1e-9 || got[i].Met != want.Met {
			t.Errorf("ratio %q = %.3f met %v, want %.3f met %v", got[i].What, got[i].Value, got[i].Met, want.Value, want.Met)
		}
	}
	if l := ppsLimit(r.Variants[0].Summary); !strings.HasPrefix(l, "the sender: the generator's core is full") {
		t.Errorf("kernel limit: %q", l)
	}
	if l := ppsLimit(r.Variants[1].Summary); !strings.Contains(l, "50% of what the generator offered was lost (n1.port.pod.xsk_rx_ring_full") {
		t.Errorf("ringnet limit: %q", l)
	}
}

func TestSummariseLeavesOutDisturbedRounds(t *testing.T) {
	run := func(pps float64, disturbed bool) *RunResult {
		return &RunResult{Throughput: &trafgen.Throughput{RxPPS: pps, OfferedPPS: pps}, PathOK: true, Noise: cpustat.Noise{Disturbed: disturbed}}
	}
	r := &Report{Variants: []*VariantReport{
		{Variant: program.Variant{ID: "a"}, Runs: []*RunResult{run(100, false), run(10, true), run(120, false)}},
		{Variant: program.Variant{ID: "b"}, Runs: []*RunResult{run(10, true), run(30, true)}},
	}}
	r.summarise()
	a, b := r.Variants[0].Summary, r.Variants[1].Summary
	if a.LeftOut != 1 || a.RxPPS.Median != 110 || a.RxPPS.Min != 100 || a.OKRuns != 3 {
		t.Errorf("a: left out %d, rx %+v, ok %d; want 1 left out, median 110 of the two quiet rounds, 3 ok", a.LeftOut, *a.RxPPS, a.OKRuns)
	}
	if b.LeftOut != 0 || b.RxPPS.Median != 20 {
		t.Errorf("b: left out %d, rx %+v; want every round kept when all were disturbed", b.LeftOut, *b.RxPPS)
	}
}
