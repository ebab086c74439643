package figure

import (
	"testing"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
)

func TestOf(t *testing.T) {
	s := Of([]float64{5, 1, 3, 2})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 5 || s.N != 4 {
		t.Errorf("Of = %+v", *s)
	}
	if Of(nil) != nil {
		t.Error("Of(nil) != nil")
	}
}

func TestGroup(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1\u202f000", 1234567: "1\u202f234\u202f567"} {
		if got := Group(v); got != want {
			t.Errorf("Group(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestCounts(t *testing.T) {
	got := Counts([]map[string]uint64{{"a": 10, "b": 1, "c": 7}, {"a": 30}, {"a": 20, "b": 2}})
	if len(got) != 2 || got["a"] != 20 || got["b"] != 1 {
		t.Errorf("Counts = %v, want a 20, b 1 (1, 0, 2: a round without it counts 0) and no c (median 0)", got)
	}
}

func TestLargest(t *testing.T) {
	m := map[string]float64{"x": 5, "y": 1500, "z": 5, "w": 1}
	if got, want := Largest(m, 2), "y 1\u202f500, x 5, and 2 more"; got != want {
		t.Errorf("Largest = %q, want %q", got, want)
	}
	if got := Largest(nil, 3); got != "" {
		t.Errorf("Largest(nil) = %q, want empty", got)
	}
}

func TestCPUsAndLoss(t *testing.T) {
	rounds := [][]cpustat.Share{
		{{Busy: 100, Softirq: 80}, {Busy: 10}},
		{{Busy: 90, Softirq: 70}, {Busy: 30}},
		{{Busy: 95, Softirq: 60}},
	}
	c := CPUs(rounds)
	if len(c) != 2 || c[0].Busy != 95 || c[0].Softirq != 70 || c[1].Busy != 20 {
		t.Errorf("CPUs = %+v, want CPU 0 busy 95 softirq 70, CPU 1 busy 20 (of the rounds that have it)", c)
	}
	if got := CPU(c, false); got != "95/20" {
		t.Errorf("CPU busy = %q", got)
	}
	if got := Loss(&Stat{Median: 75}, &Stat{Median: 100}); got != "25.0%" {
		t.Errorf("Loss = %q, want 25.0%%", got)
	}
	if got := Loss(nil, &Stat{Median: 100}); got != "-" {
		t.Errorf("Loss without rx = %q, want -", got)
	}
}
