package main

import (
	"math"
	"testing"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// run is a round that measured one flow at one and new flows at new pps;
// a load at 0 pps did not prove its path.
func run(one, new float64, disturbed bool) *RunResult {
	res := &RunResult{}
	for i, pps := range []float64{one, new} {
		res.Loads = append(res.Loads, &LoadResult{Load: loads[i].ID, PathOK: pps > 0, Checked: uint64(i) * 1000,
			Noise: cpustat.Noise{Disturbed: disturbed}, Throughput: &trafgen.Throughput{RxPPS: pps, OfferedPPS: pps, Delivered: 1000}})
	}
	return res
}

func TestSummariseAndRatios(t *testing.T) {
	r := &Report{Meta: Meta{Rules: []int{10, 10000}, Variants: []program.Variant{{ID: "r", Name: "ringnet"}, {ID: "k", Name: "iptables"}}}}
	add := func(v string, n int, runs ...*RunResult) {
		p := r.point(v, n)
		p.Runs = append(p.Runs, runs...)
	}
	add("k", 10000, run(100, 10, false))
	add("r", 10, run(200, 100, false), run(220, 0, false), run(10, 10, true))
	add("r", 10000, run(190, 80, false))
	add("k", 10, run(100, 100, false))
	r.summarise()

	if r.Points[0].Variant != "r" || r.Points[0].Rules != 10 || r.Points[3].Variant != "k" || r.Points[3].Rules != 10000 {
		t.Errorf("points not in variant, then rule order: %+v", r.Points)
	}
	p := r.find("r", 10)
	if left := p.Loads["one"].LeftOut; left != 1 || p.OKRuns != 3 {
		t.Errorf("ringnet, 10 rules: %d left out, %d ok; want the disturbed round left out, 3 ok", left, p.OKRuns)
	}
	if got := p.Loads["one"].RxPPS.Median; got != 210 {
		t.Errorf("one flow median %v, want 210 (the two quiet rounds)", got)
	}
	if got := p.Loads["new"].RxPPS; got.Median != 100 || got.N != 1 {
		t.Errorf("new flows %+v, want the one round that proved its path", got)
	}
	if got := p.Loads["new"].CheckedPerPkt.Median; got != 1 {
		t.Errorf("new flows checked per packet %v, want 1", got)
	}
	want := map[string]struct {
		v   float64
		met bool
	}{
		"ringnet, one flow: 10\u202f000 rules / 10 rules":   {190.0 / 210, true},
		"iptables, one flow: 10\u202f000 rules / 10 rules":  {1, false},
		"ringnet / iptables, one flow, 10\u202f000 rules":   {1.9, false},
		"ringnet, new flows: 10\u202f000 rules / 10 rules":  {0.8, false},
		"iptables, new flows: 10\u202f000 rules / 10 rules": {0.1, false},
		"ringnet / iptables, new flows, 10\u202f000 rules":  {8, false},
	}
	if len(r.Ratios) != len(want) {
		t.Errorf("ratios %+v, want %d", r.Ratios, len(want))
	}
	for _, x := range r.Ratios {
		w, ok := want[x.What]
		if !ok || math.Abs(x.Value-w.v) > 1e-9 || x.Met != w.met || (x.Target != "") != (x.What[:8] == "ringnet,") {
			t.Errorf("ratio %+v, want %+v", x, w)
		}
	}
	if r.Failed() {
		t.Error("Failed() with every round ok")
	}
	r.find("k", 10).Runs[0].Errors = []string{"install 10 rules: boom"}
	r.summarise()
	if !r.Failed() {
		t.Error("not Failed() with a failed round")
	}
}
