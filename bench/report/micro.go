package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/gobench"
	"github.com/ringnet/ringnet/bench/internal/machine"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// microTarget is a target on one benchmark's figure: its name (a trailing
// "*" takes every name that starts with the rest), the unit and the most it may be, as in
// docs/benchmarks.md and the packages' docs.
type microTarget struct {
	name, unit string
	atMost     float64
}

var microTargets = []microTarget{
	{"PipelineForward", "ns/op", 60},
	{"RouteLookupV4/100k", "ns/op", 15},
	{"RouteLookupV6/100k", "ns/op", 30},
	{"PolicyVerdict/*", "ns/op", 20},
	{"ServiceLookup", "ns/op", 25},
	{"SnapshotBuild", "ns/op", 50e6},
	// Connection tracking is held to its targets on the calls the workers
	// make: LookupBatch for an RX batch, InsertBatch for its NetworkPolicy
	// connections. One Lookup or Insert at a time in a 1M-flow table costs
	// about one DRAM miss (MemoryLatency), whatever the table; the tables
	// of docs/benchmarks.md show them beside.
	{"ConntrackLookup/batch", "ns/op", 40},
	{"ConntrackInsert/batch", "ns/op", 100},
}

// check holds v to the target.
func (t microTarget) check(what string, v float64) ratio {
	r := ratio{What: what, Value: v, Met: v <= t.atMost, Target: "≤ " + unitString(t.atMost, t.unit), Shown: unitString(v, t.unit)}
	if t.atMost == 0 {
		r.Target = "0"
	}
	return r
}

// unitString writes v in unit: times per operation as nsString does,
// anything else as a number.
func unitString(v float64, unit string) string {
	if unit == "ns/op" {
		return nsString(v)
	}
	return trimFloat(v)
}

// perPacket are the benchmarks of per-packet work, which must not
// allocate (the house style's rule 7); a trailing "*" takes every name
// that starts with the rest.
var perPacket = []string{"PipelineForward*", "Decode/*", "ChecksumIncremental/*", "Lookup/*", "RouteLookupV4/*", "RouteLookupV6/*",
	"PolicyVerdict/*", "ServiceLookup", "NeighborLookup*", "ConntrackLookup/*"}

// allocations holds the per-packet benchmarks of sums to 0 allocs/op: one
// target, naming those that allocate; ok false if none ran.
func allocations(sums []gobench.Summary) (r ratio, ok bool) {
	var checked int
	var allocating []string
	for _, x := range sums {
		st := x.Stats["allocs/op"]
		if st == nil || !slices.ContainsFunc(perPacket, func(p string) bool { return microTarget{name: p}.matches(x.Name) }) {
			continue
		}
		checked++
		if st.Median > 0 {
			allocating = append(allocating, fmt.Sprintf("`%s` (%s)", x.Name, trimFloat(st.Median)))
		}
	}
	what := fmt.Sprintf("per-packet benchmarks that allocate, of %d", checked)
	if len(allocating) > 0 {
		what += ": " + strings.Join(allocating, ", ")
	}
	return ratio{What: what, Value: float64(len(allocating)), Shown: fmt.Sprint(len(allocating)), Target: "0", Met: len(allocating) == 0}, checked > 0
}

// microSpeedups are targets on one benchmark against another of the same
// run: how many times faster (ns/op of base over ns/op of name).
var microSpeedups = []struct {
	name, base, target string
}{
	{"RouteLookupV4/100k", "RouteLookupV4Bart/100k", "≥ 1"},
	{"RouteLookupV6/100k", "RouteLookupV6Bart/100k", "≥ 1"},
	{"ConntrackLookup/parallel", "ConntrackLookupMapRWMutex/parallel", "≥ 3"},
	{"ConntrackLookup/batch-parallel", "ConntrackLookupMapRWMutex/parallel", "≥ 3"},
	{"ConntrackInsert/batch", "ConntrackInsertMapRWMutex/fresh", "≥ 3"},
	{"ConntrackInsert/full-parallel", "ConntrackInsertMapRWMutex/full-parallel", "≥ 3"},
	{"ConntrackInsert/full-readers", "ConntrackInsertMapRWMutex/full-readers", "≥ 3"},
	{"ConntrackInsert/batch-readers", "ConntrackInsertMapRWMutex/fresh-readers", "≥ 3"},
	{"PolicyVerdict/10k", "PolicyVerdict/10", "≥ 0.83"}, // 10k rules within 1.2× of 10
}

func (t microTarget) matches(name string) bool {
	if prefix, ok := strings.CutSuffix(t.name, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return name == t.name
}

// microMeta is the run's description from micro.txt's config lines: what
// --describe wrote, the command the Makefile wrote, and go test's cpu.
func microMeta(cfg map[string]string) program.Meta {
	m := program.Meta{Command: cfg["command"], Date: cfg["date"], Machine: machine.Machine{
		Kernel: cfg["kernel"], CPUModel: cfg["cpu-model"], GoVersion: cfg["go-version"]}}
	m.Cores, _ = strconv.Atoi(cfg["cores"])
	if m.CPUModel == "" {
		m.CPUModel = cfg["cpu"] // go test's, when --describe did not run
	}
	return m
}

// modulePath is cut from the packages' names.
const modulePath = "github.com/ringnet/ringnet"

func renderMicro(s *section, data []byte) (outcome, error) {
	return renderMicroFrom(s, data, ".")
}

// renderMicroFrom renders the micro benchmarks with the descriptions of
// their doc comments in the source tree at root.
func renderMicroFrom(s *section, data []byte, root string) (outcome, error) {
	out, err := gobench.Parse(bytes.NewReader(data))
	if err != nil {
		return outcome{}, err
	}
	sums := gobench.Summarise(out.Results)
	if len(sums) == 0 {
		return outcome{}, fmt.Errorf("no benchmark results")
	}
	m := microMeta(out.Config)
	runs := 0
	for _, x := range sums {
		runs = max(runs, x.Runs)
	}
	s.header(m, fmt.Sprintf("%d benchmarks, each run %d times; each figure is the median of the runs, the min – max beside it.", len(sums), runs))

	byName := map[string]gobench.Summary{}
	var rs []ratio
	var docs map[string]string
	for i, x := range sums {
		byName[x.Name] = x
		if i == 0 || x.Pkg != sums[i-1].Pkg {
			if i > 0 {
				s.WriteString("\n")
			}
			fmt.Fprintf(s, "`%s`:\n\n| benchmark | ns/op | min – max | B/op | allocs/op | other | what it measures |\n|---|--:|--:|--:|--:|---|---|\n",
				orDash(strings.TrimPrefix(x.Pkg, modulePath+"/")))
			docs = benchDocs(root, x.Pkg)
		}
		top, _, sub := strings.Cut(x.Name, "/")
		doc := docs[top]
		if sub && i > 0 && strings.HasPrefix(sums[i-1].Name, top+"/") {
			doc = "" // said on the first sub-benchmark
		}
		var other []string
		for _, u := range x.Units() {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" {
				other = append(other, fmt.Sprintf("%s %s", trimFloat(x.Stats[u].Median), u))
			}
		}
		fmt.Fprintf(s, "| `%s` | %s | %s | %s | %s | %s | %s |\n", x.Name, nsCell(x.Stats["ns/op"]), nsSpan(x.Stats["ns/op"]),
			figure.Median(x.Stats["B/op"], "%.0f"), figure.Median(x.Stats["allocs/op"], "%.0f"), strings.Join(other, ", "), doc)
		for _, t := range microTargets {
			if st := x.Stats[t.unit]; t.matches(x.Name) && st != nil {
				rs = append(rs, t.check(fmt.Sprintf("`%s` %s", x.Name, t.unit), st.Median))
			}
		}
	}
	s.WriteString("\n")
	if r, ok := allocations(sums); ok {
		rs = append([]ratio{r}, rs...)
	}
	for _, sp := range microSpeedups {
		a, b := byName[sp.name].Stats["ns/op"], byName[sp.base].Stats["ns/op"]
		if a != nil && b != nil && a.Median > 0 {
			rs = append(rs, newRatio(fmt.Sprintf("`%s` speed-up over `%s`", sp.name, sp.base), b.Median/a.Median, sp.target))
		}
	}
	s.ratios("**Targets** (ns/op and allocs/op are medians; a speed-up is the other benchmark's ns/op over this one's):", rs)
	return outcome{title: "Micro benchmarks", date: m.Date, machine: machineLine(m), targets: withTargets(rs)}, nil
}

// nsCell writes a time per operation: ns below 10 µs, µs or ms above.
func nsCell(st *figure.Stat) string {
	if st == nil {
		return "-"
	}
	return nsString(st.Median)
}

func nsSpan(st *figure.Stat) string {
	if st == nil || st.N <= 1 {
		return "-"
	}
	return nsString(st.Min) + " – " + nsString(st.Max)
}

func nsString(ns float64) string {
	switch {
	case ns >= 1e6:
		return trimFloat(ns/1e6) + " ms"
	case ns >= 1e4:
		return trimFloat(ns/1e3) + " µs"
	}
	return trimFloat(ns)
}

// trimFloat writes v with three significant digits.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', 3, 64)
	if strings.ContainsAny(s, "e") {
		s = strconv.FormatFloat(v, 'f', 0, 64)
	}
	return s
}
