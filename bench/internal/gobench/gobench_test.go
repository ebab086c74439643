package gobench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/bench/internal/figure"
)

const sample = `command: go test -run '^$' -bench . -count 2
goos: linux
goarch: amd64
pkg: github.com/ringnet/ringnet/fastpath/packet
cpu: AMD EPYC
BenchmarkDecode/IPv4UDP-2         	147023011	         8.100 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecode/IPv4UDP-2         	150000000	         7.900 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecode
    bench_test.go:42: a log line from the benchmark
PASS
ok  	github.com/ringnet/ringnet/fastpath/packet	3.2s
goos: linux
pkg: github.com/ringnet/ringnet/tables/route
cpu: Something else
BenchmarkRouteLookupV4/100k-2 	 93000000	        12.8 ns/op	         1.000 hits/op	        75.00 B/route
BenchmarkRouteLookupV4/100k-2 	 91000000	        13.6 ns/op	         1.000 hits/op	        75.00 B/route
BenchmarkRouteLookupV4/100k-2 	 90000000	        12.1 ns/op	         1.000 hits/op	        75.00 B/route
BenchmarkSize/frame-64         	 1000	        5 ns/op
Benchmarking is what this line talks about
ok  	github.com/ringnet/ringnet/tables/route	9.9s
`

func TestParse(t *testing.T) {
	out, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	wantConfig := map[string]string{"command": "go test -run '^$' -bench . -count 2", "goos": "linux", "goarch": "amd64", "cpu": "AMD EPYC"}
	if d := cmp.Diff(wantConfig, out.Config); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	const pkt, route = "github.com/ringnet/ringnet/fastpath/packet", "github.com/ringnet/ringnet/tables/route"
	want := []Result{
		{Pkg: pkt, Name: "Decode/IPv4UDP", Procs: 2, Iters: 147023011, Values: map[string]float64{"ns/op": 8.1, "B/op": 0, "allocs/op": 0}},
		{Pkg: pkt, Name: "Decode/IPv4UDP", Procs: 2, Iters: 150000000, Values: map[string]float64{"ns/op": 7.9, "B/op": 0, "allocs/op": 0}},
		{Pkg: route, Name: "RouteLookupV4/100k", Procs: 2, Iters: 93000000, Values: map[string]float64{"ns/op": 12.8, "hits/op": 1, "B/route": 75}},
		{Pkg: route, Name: "RouteLookupV4/100k", Procs: 2, Iters: 91000000, Values: map[string]float64{"ns/op": 13.6, "hits/op": 1, "B/route": 75}},
		{Pkg: route, Name: "RouteLookupV4/100k", Procs: 2, Iters: 90000000, Values: map[string]float64{"ns/op": 12.1, "hits/op": 1, "B/route": 75}},
		// GOMAXPROCS 1 prints no suffix; "-64" then reads as one, as in benchfmt.
		{Pkg: route, Name: "Size/frame", Procs: 64, Iters: 1000, Values: map[string]float64{"ns/op": 5}},
	}
	if d := cmp.Diff(want, out.Results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}

	sums := Summarise(out.Results)
	if len(sums) != 3 {
		t.Fatalf("Summarise: %d benchmarks, want 3", len(sums))
	}
	r := sums[1]
	if r.Name != "RouteLookupV4/100k" || r.Runs != 3 {
		t.Fatalf("second summary %s with %d runs, want RouteLookupV4/100k with 3", r.Name, r.Runs)
	}
	if d := cmp.Diff(&figure.Stat{Median: 12.8, Min: 12.1, Max: 13.6, N: 3}, r.Stats["ns/op"]); d != "" {
		t.Errorf("ns/op (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"ns/op", "B/route", "hits/op"}, r.Units()); d != "" {
		t.Errorf("units (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"ns/op", "B/op", "allocs/op"}, sums[0].Units()); d != "" {
		t.Errorf("units (-want +got):\n%s", d)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"BenchmarkX-2  100  5 ns/op 3",          // a value without a unit
		"BenchmarkX-2  100  five ns/op",         // not a number
		"BenchmarkX-2  100  5 ns/op 1e999 B/op", // out of range
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
}

func TestNotResults(t *testing.T) {
	for _, in := range []string{
		"Benchmarks are fun",      // lower case after Benchmark: not a name
		"BenchmarkX started",      // no iteration count
		"BenchmarkX",              // the name alone
		"--- FAIL: BenchmarkX",    // go test's verdict
		"http://example.com/x: y", // not a configuration line either
	} {
		out, err := Parse(strings.NewReader(in))
		if err != nil || len(out.Results) != 0 || len(out.Config) != 0 {
			t.Errorf("Parse(%q) = %+v, %v; want nothing", in, out, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, s := range Summarise(out.Results) {
			for _, u := range s.Units() {
				if st := s.Stats[u]; st.Min > st.Median || st.Median > st.Max {
					t.Fatalf("%s %s: %+v out of order", s.Name, u, st)
				}
			}
		}
	})
}
