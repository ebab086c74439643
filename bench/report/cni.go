package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/chart"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// cniAddP99Ms is bench/cni's target for ringnet's ADD p99, in ms
// (bench/cni TargetAddP99Ms).
const cniAddP99Ms = 20

var cniAddP99Target = fmt.Sprintf("≤ %d", cniAddP99Ms)

// cniReport is what bench/cni writes with --json: every call's latency in
// ms, in call order, --pods calls per round.
type cniReport struct {
	Meta struct {
		program.Meta
		LoadAvg       string `json:"load_average_at_start"`
		Cnitool       string `json:"cnitool"`
		DebianPlugins string `json:"debian_plugins"`
		Pods          int    `json:"pods"`
		Method        string `json:"method"`
	} `json:"meta"`
	Plugins     []cniPlugin `json:"plugins"`
	PluginSteps []cniStep   `json:"plugin_steps"`
	Phases      []cniStep   `json:"phases"`
}

// cniStep is one of ringnet's steps, summarised by bench/cni.
type cniStep struct {
	Name    string     `json:"name"`
	Summary cniSummary `json:"summary"`
}

// cniPlugin is one plugin's calls.
type cniPlugin struct {
	ID    string    `json:"id"`
	Name  string    `json:"name"`
	Desc  string    `json:"description"`
	AddMs []float64 `json:"add_ms"`
	DelMs []float64 `json:"del_ms"`
}

// cniSummary is bench/cni's summary of a step's calls.
type cniSummary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// rank is the nearest-rank percentile p of samples, as bench/cni takes it.
func rank(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(samples))
	return s[max(0, int(math.Ceil(p*float64(len(s))))-1)]
}

// percentile is percentile p over all the calls, with the range of the
// same percentile taken round by round.
func percentile(samples []float64, perRound int, p float64) chart.Value {
	if len(samples) == 0 {
		return chart.Missing
	}
	v := chart.Point(rank(samples, p))
	if perRound <= 0 || len(samples) <= perRound {
		return v
	}
	v.Min, v.Max = math.Inf(1), math.Inf(-1)
	for round := range slices.Chunk(samples, perRound) {
		x := rank(round, p)
		v.Min, v.Max = min(v.Min, x), max(v.Max, x)
	}
	return v
}

func msCell(v chart.Value) string {
	if !v.Measured() {
		return "-"
	}
	s := fmt.Sprintf("%.1f", v.Median)
	if v.Max > v.Min {
		s += fmt.Sprintf(" (%.1f – %.1f)", v.Min, v.Max)
	}
	return s
}

func renderCNI(s *section, data []byte) (outcome, error) {
	r, err := decode(data, "plugins", func(r *cniReport) int { return len(r.Plugins) })
	if err != nil {
		return outcome{}, err
	}
	m := r.Meta
	s.header(m.Meta, fmt.Sprintf("%d pods × %d rounds per plugin, cnitool %s, %s, load average at the start %s; %s. "+
		"Each figure is a percentile over every call, with the same percentile round by round as its range.",
		m.Pods, m.Runs, m.Cnitool, orDash(m.DebianPlugins), orDash(m.LoadAvg), m.Method))

	type row struct {
		name                string
		add50, add99, del50 chart.Value
	}
	var rows []row
	groups := []string{}
	add := []chart.Series{{Name: "ADD p50"}, {Name: "ADD p99"}}
	s.WriteString("| plugin | op | calls | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, p := range r.Plugins {
		rw := row{name: p.Name, add50: percentile(p.AddMs, m.Pods, 0.5), add99: percentile(p.AddMs, m.Pods, 0.99),
			del50: percentile(p.DelMs, m.Pods, 0.5)}
		rows = append(rows, rw)
		for _, op := range []struct {
			name    string
			samples []float64
		}{{"ADD", p.AddMs}, {"DEL", p.DelMs}} {
			fmt.Fprintf(s, "| %s | %s | %d | %s | %s | %s | %s |\n", p.Name, op.name, len(op.samples),
				msCell(percentile(op.samples, m.Pods, 0.5)), msCell(percentile(op.samples, m.Pods, 0.9)),
				msCell(percentile(op.samples, m.Pods, 0.99)), msCell(chart.Point(rank(op.samples, 1))))
		}
		groups = append(groups, p.Name)
		add[0].Values = append(add[0].Values, rw.add50)
		add[1].Values = append(add[1].Values, rw.add99)
	}
	s.WriteString("\n")
	if err := s.chart("cni-add.png", "CNI ADD latency per plugin, p50 and p99 over every call, range of the rounds",
		chart.Bars{Title: "CNI ADD latency, one cnitool call (exec to exit)", YLabel: "ms", Groups: groups, Series: add, Labels: true,
			TargetName: "target: ringnet ADD p99 " + cniAddP99Target + " ms", Target: cniAddP99Ms}); err != nil {
		return outcome{}, err
	}

	var rs []ratio
	ringnet := slices.IndexFunc(r.Plugins, func(p cniPlugin) bool { return p.ID == "ringnet" })
	bridge := slices.IndexFunc(r.Plugins, func(p cniPlugin) bool { return p.ID == "bridge" })
	if ringnet >= 0 && rows[ringnet].add99.Measured() {
		rs = append(rs, newRatio("ringnet ADD p99, ms", rows[ringnet].add99.Median, cniAddP99Target))
	}
	if ringnet >= 0 && bridge >= 0 {
		n, d := rows[ringnet], rows[bridge]
		for _, x := range []struct {
			what     string
			num, den chart.Value
		}{{"ADD p50", n.add50, d.add50}, {"ADD p99", n.add99, d.add99}, {"DEL p50", n.del50, d.del50}} {
			if x.num.Measured() && x.den.Measured() && x.den.Median > 0 {
				rs = append(rs, newRatio("ringnet / bridge + host-local, "+x.what, x.num.Median/x.den.Median, ""))
			}
		}
	}
	s.ratios("**Target and ratios** to the bridge plugin, measured in the same run:", rs)

	for _, t := range []struct {
		title string
		steps []cniStep
	}{
		{"ringnet's ADDs above, step by step as the exec'd plugin timed them itself (`RINGNET_CNI_TIMINGS`; the last row is each ADD's wall time less the plugin's own):", r.PluginSteps},
		{fmt.Sprintf("ringnet's ADD and DEL step by step, redone in-process as the plugin does them (no exec), %d pods:", m.Pods), r.Phases},
	} {
		if len(t.steps) == 0 {
			continue
		}
		s.WriteString(t.title + "\n\n| step | n | p50 ms | p90 ms | p99 ms | max ms |\n|---|--:|--:|--:|--:|--:|\n")
		for _, ph := range t.steps {
			x := ph.Summary
			fmt.Fprintf(s, "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", ph.Name, x.N, x.P50, x.P90, x.P99, x.Max)
		}
		s.WriteString("\n")
	}
	if l := cniLimit(*r, rows[max(ringnet, 0)].add50, ringnet >= 0); l != "" {
		s.list("**What limited ringnet's ADD** (from the steps' medians):", []string{l})
	}
	var ps []string
	for _, p := range r.Plugins {
		ps = append(ps, fmt.Sprintf("**%s**: %s", p.Name, p.Desc))
	}
	s.list("Plugins:", ps)
	return outcome{title: "CNI ADD/DEL", date: m.Date, machine: machineLine(m.Meta), targets: withTargets(rs)}, nil
}

// cniLimit says where ringnet's ADD went: with the plugin's own timings,
// its steps against what a whole cnitool ADD took (add50) and the rest
// outside its code; without them, which of the in-process steps took most.
func cniLimit(r cniReport, add50 chart.Value, haveRingnet bool) string {
	if len(r.PluginSteps) > 0 && haveRingnet && add50.Measured() {
		var parts []string
		var total, outside float64
		for _, x := range r.PluginSteps {
			switch {
			case strings.HasPrefix(x.Name, "outside"):
				outside = x.Summary.P50
			case strings.HasSuffix(x.Name, "to result"):
				total = x.Summary.P50
			case strings.Contains(x.Name, "CPU"), strings.HasSuffix(x.Name, "to ADD"):
			default:
				parts = append(parts, fmt.Sprintf("%s %.1f", strings.TrimPrefix(x.Name, "plugin: "), x.Summary.P50))
			}
		}
		return fmt.Sprintf("a cnitool ADD took %.1f ms; ringnet's plugin spent %.1f ms in its own code (%s ms) and %.1f ms went outside it: exec, the Go runtime's start, exit, and cnitool itself, which the loopback floor shows alone.",
			add50.Median, total, strings.Join(parts, ", "), outside)
	}
	var largest, total *cniSummary
	var name string
	for i, ph := range r.Phases {
		switch {
		case !strings.HasPrefix(ph.Name, "ADD"):
		case strings.Contains(ph.Name, "all"):
			total = &r.Phases[i].Summary
		case largest == nil || ph.Summary.P50 > largest.P50:
			largest, name = &r.Phases[i].Summary, ph.Name
		}
	}
	if largest == nil {
		return ""
	}
	l := fmt.Sprintf("the largest step is %s, p50 %.1f ms", strings.TrimPrefix(name, "ADD: "), largest.P50)
	if total != nil {
		l += fmt.Sprintf(" of %.1f ms for the whole ADD in-process", total.P50)
	}
	if haveRingnet && add50.Measured() && total != nil {
		l += fmt.Sprintf("; a cnitool ADD took %.1f ms, so exec, cnitool and the plugin's start-up are about %.1f ms",
			add50.Median, max(0, add50.Median-total.P50))
	}
	return l + "."
}
