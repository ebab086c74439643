package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/chart"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// datapathReport is what bench/e2e and bench/crossnode write with --json,
// as far as the report reads it: the two share their shape (variants
// with rounds and a summary of medians and ranges), and fields one of them
// lacks stay empty.
type datapathReport struct {
	Meta struct {
		program.Meta
		WarmupSeconds  float64  `json:"warmup_seconds"`
		WindowSeconds  float64  `json:"window_seconds"`
		LatencySeconds int      `json:"latency_seconds"`
		TCPSeconds     int      `json:"tcp_seconds"`
		Method         []string `json:"method"`
	} `json:"meta"`
	Variants []datapathVariant `json:"variants"`
	// Ratios with their targets (bench/crossnode); bench/e2e writes only
	// PPSRatios, and the report holds them to the targets of e2eTargets.
	Ratios    []ratio            `json:"ratios"`
	PPSRatios map[string]float64 `json:"ratios_of_median_rx_pps"`
}

type datapathVariant struct {
	program.Variant
	Runs []struct {
		Round  int      `json:"round"`
		Error  string   `json:"error"`  // bench/e2e
		Errors []string `json:"errors"` // bench/crossnode
	} `json:"runs"`
	Summary struct {
		program.Tally
		RxPPS       *figure.Stat            `json:"rx_pps"`
		OfferedPPS  *figure.Stat            `json:"offered_pps"`
		CPUNsPkt    *figure.Stat            `json:"cpu_ns_per_packet"`
		CPUBusy     []float64               `json:"median_cpu_busy_percent"` // bench/e2e
		LoadCPU     []cpustat.Share         `json:"load_cpu"`                // bench/crossnode
		RingnetdCPU map[string]*figure.Stat `json:"ringnetd_cpu_percent"`
		P50us       *figure.Stat            `json:"p50_us"`
		P99us       *figure.Stat            `json:"p99_us"`
		P999us      *figure.Stat            `json:"p99_9_us"`
		TCPGbps     *figure.Stat            `json:"tcp_gbit_per_s"`
		Retransmits *figure.Stat            `json:"tcp_retransmits"`
		PPSLimit    string                  `json:"pps_limit"`
		TCPLimit    string                  `json:"tcp_limit"`
		LeftOut     int                     `json:"left_out_runs"`
	} `json:"summary"`
}

func (v datapathVariant) label() string { return "(" + v.ID + ") " + v.Name }

// errors lists the variant's failed rounds.
func (v datapathVariant) errors() []string {
	var out []string
	for _, r := range v.Runs {
		for _, e := range append(r.Errors, r.Error) {
			if e != "" {
				out = append(out, fmt.Sprintf("(%s) round %d: %s", v.ID, r.Round, e))
			}
		}
	}
	return out
}

// datapathPage says how to write one of the two.
type datapathPage struct {
	name, title string
	// ratios gives the ratios with their targets.
	ratios func(r *datapathReport) []ratio
}

func renderE2E(s *section, data []byte) (outcome, error) {
	return renderDatapath(s, data, datapathPage{name: "e2e", title: "End to end, one node", ratios: e2eRatios})
}

func renderCrossnode(s *section, data []byte) (outcome, error) {
	return renderDatapath(s, data, datapathPage{name: "crossnode", title: "Cross-node",
		ratios: func(r *datapathReport) []ratio { return r.Ratios }})
}

// e2eTargets are the single-node benchmark's targets: ringnetd (c, and d
// busy-polling) against kernel routing (a) and against the asavie/xdp
// forwarder (b), on 64-byte pps and on p99 latency.
var e2eTargets = []struct {
	num, den string
	p99      bool
	target   string
}{
	{"c", "a", false, "≥ 1.5"},
	{"d", "a", false, "≥ 1.5"},
	{"c", "b", false, "≥ 1"},
	{"d", "b", false, "≥ 1"},
	{"d", "a", true, "≤ 1"},
	{"c", "a", true, ""},
}

func e2eRatios(r *datapathReport) []ratio {
	byID := map[string]datapathVariant{}
	for _, v := range r.Variants {
		byID[v.ID] = v
	}
	var out []ratio
	for _, t := range e2eTargets {
		n, okn := byID[t.num]
		d, okd := byID[t.den]
		if !okn || !okd {
			continue
		}
		what, fig := "64-byte pps", func(v datapathVariant) *figure.Stat { return v.Summary.RxPPS }
		if t.p99 {
			what, fig = "p99 latency", func(v datapathVariant) *figure.Stat { return v.Summary.P99us }
		}
		if fn, fd := fig(n), fig(d); fn != nil && fd != nil && fd.Median > 0 {
			out = append(out, newRatio(fmt.Sprintf("%s / %s, %s (%s/%s)", n.Name, d.Name, what, t.num, t.den), fn.Median/fd.Median, t.target))
		}
	}
	return out
}

// kind sorts a datapath into the chart's colours: the kernel's, ringnet's,
// or another program's (the asavie/xdp forwarder).
func kind(v datapathVariant) int {
	switch n := strings.ToLower(v.Name); {
	case strings.Contains(n, "kernel"):
		return 0
	case strings.Contains(n, "ringnet"):
		return 1
	}
	return 2
}

var kindNames = []string{"Linux kernel", "ringnet", "other AF_XDP forwarder"}

func renderDatapath(s *section, data []byte, page datapathPage) (outcome, error) {
	r, err := decode(data, "variants", func(r *datapathReport) int { return len(r.Variants) })
	if err != nil {
		return outcome{}, err
	}
	m := r.Meta
	how := fmt.Sprintf("%d round(s) per variant, interleaved; 64-byte UDP over a %g s window after %g s of warm-up", m.Runs, m.WindowSeconds, m.WarmupSeconds)
	if m.LatencySeconds > 0 {
		how += fmt.Sprintf(", latency from a %d s sockperf ping-pong", m.LatencySeconds)
	}
	if m.TCPSeconds > 0 {
		how += fmt.Sprintf(", TCP from a %d s iperf3 run", m.TCPSeconds)
	}
	s.header(m.Meta, how+". Each figure is the median over rounds, the min – max of the rounds beside it.")

	if err := datapathCharts(s, page.name, r.Variants); err != nil {
		return outcome{}, err
	}
	ppsTable(s, r.Variants)
	latencyTable(s, r.Variants)
	tcpTable(s, r.Variants)
	rs := page.ratios(r)
	s.ratios("**Ratios** of the medians, measured in the same run:", rs)

	var limits, failed []string
	for _, v := range r.Variants {
		if sm := v.Summary; sm.PPSLimit != "" || sm.TCPLimit != "" {
			limits = append(limits, fmt.Sprintf("%s — pps: %s. TCP: %s.", v.label(), orDash(sm.PPSLimit), orDash(sm.TCPLimit)))
		}
		failed = append(failed, v.errors()...)
	}
	s.list("**What limited each figure** (from the medians, as the benchmark reads them):", limits)
	s.list("**Failed rounds** (left out of the figures; the JSON keeps them):", failed)
	var vs []string
	for _, v := range r.Variants {
		vs = append(vs, fmt.Sprintf("**%s**: %s", v.label(), v.Desc))
	}
	s.list("Variants:", vs)
	s.list("Method:", m.Method)
	return outcome{title: page.title, date: m.Date, machine: machineLine(m.Meta), targets: withTargets(rs)}, nil
}

// withTargets keeps the ratios that have a target.
func withTargets(rs []ratio) []ratio {
	return slices.DeleteFunc(slices.Clone(rs), func(r ratio) bool { return r.Target == "" })
}

// datapathCharts draws pps by datapath, latency percentiles and, where
// measured, TCP throughput.
func datapathCharts(s *section, name string, vs []datapathVariant) error {
	var groups []string
	pps := make([]chart.Series, len(kindNames))
	for k := range pps {
		pps[k] = chart.Series{Name: kindNames[k], Color: chart.Palette[k]}
	}
	for _, v := range vs {
		groups = append(groups, v.label())
		for k := range pps {
			val := chart.Missing
			if kind(v) == k {
				val = value(v.Summary.RxPPS)
			}
			pps[k].Values = append(pps[k].Values, val)
		}
	}
	pps = slices.DeleteFunc(pps, func(se chart.Series) bool {
		return !slices.ContainsFunc(se.Values, chart.Value.Measured) // no such datapath
	})
	err := s.chart(name+"-pps.png", "64-byte UDP packets per second by datapath: median, min–max of the rounds",
		chart.Bars{Title: "64-byte UDP, pod to pod: packets per second received", YLabel: "packets per second",
			Groups: groups, Series: pps, Labels: true})
	if err != nil {
		return err
	}

	var lgroups []string
	lat := []chart.Series{{Name: "p50"}, {Name: "p99"}, {Name: "p99.9"}}
	for _, v := range vs {
		sm := v.Summary
		if sm.P50us == nil && sm.P99us == nil {
			continue
		}
		lgroups = append(lgroups, v.label())
		for i, st := range []*figure.Stat{sm.P50us, sm.P99us, sm.P999us} {
			lat[i].Values = append(lat[i].Values, value(st))
		}
	}
	if len(lgroups) > 0 {
		// A tail of outliers would flatten every other bar: past a spread
		// of 20×, a log scale.
		bars := chart.Bars{Title: "Latency, sockperf ping-pong (half round trip)", YLabel: "µs", Groups: lgroups, Series: lat, Labels: true}
		if spread(lat) > 20 {
			bars.LogY, bars.YLabel = true, "µs (log scale)"
		}
		err := s.chart(name+"-latency.png", "Latency percentiles by datapath (sockperf ping-pong, half round trip): median, min–max of the rounds", bars)
		if err != nil {
			return err
		}
	}

	var tgroups []string
	tcp := chart.Series{Name: "TCP"}
	for _, v := range vs {
		if v.Summary.TCPGbps != nil {
			tgroups = append(tgroups, v.label())
			tcp.Values = append(tcp.Values, value(v.Summary.TCPGbps))
		}
	}
	if len(tgroups) > 0 {
		return s.chart(name+"-tcp.png", "TCP throughput by datapath (iperf3, one stream): median, min–max of the rounds",
			chart.Bars{Title: "TCP, one iperf3 stream", YLabel: "Gbit/s", Groups: tgroups, Series: []chart.Series{tcp}, Labels: true})
	}
	return nil
}

// ppsTable writes the 64-byte UDP figures.
func ppsTable(s *section, vs []datapathVariant) {
	daemons := slices.ContainsFunc(vs, func(v datapathVariant) bool { return len(v.Summary.RingnetdCPU) > 0 })
	s.WriteString("**64-byte UDP, pod to pod** (received by the receiving pod's eth0):\n\n")
	s.WriteString("| variant | rx pps | min – max | offered pps | loss | CPU busy (softirq), per CPU |")
	if daemons {
		s.WriteString(" ringnetd CPU, per node |")
	}
	s.WriteString(" CPU ns per packet | rounds ok (left out) |\n|---|--:|--:|--:|--:|--:|")
	if daemons {
		s.WriteString("--:|")
	}
	s.WriteString("--:|--:|\n")
	for _, v := range vs {
		sm := v.Summary
		rx, span := figure.Grouped(sm.RxPPS)
		off, _ := figure.Grouped(sm.OfferedPPS)
		fmt.Fprintf(s, "| %s | %s | %s | %s | %s | %s |", v.label(), rx, span, off, loss(sm.RxPPS, sm.OfferedPPS), cpuCell(sm.CPUBusy, sm.LoadCPU))
		if daemons {
			fmt.Fprintf(s, " %s |", daemonCell(sm.RingnetdCPU))
		}
		ok := fmt.Sprintf("%d/%d", sm.OKRuns, sm.OKRuns+sm.FailedRuns)
		if sm.LeftOut > 0 {
			ok += fmt.Sprintf(" (%d out)", sm.LeftOut)
		}
		fmt.Fprintf(s, " %s | %s |\n", figure.Median(sm.CPUNsPkt, "%.0f"), ok)
	}
	s.WriteString("\n")
}

// latencyTable writes the percentiles of the variants that measured them.
func latencyTable(s *section, vs []datapathVariant) {
	var rows []string
	for _, v := range vs {
		sm := v.Summary
		if sm.P50us == nil && sm.P99us == nil {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", v.label(), cell(sm.P50us, "%.1f"), cell(sm.P99us, "%.1f"), cell(sm.P999us, "%.1f")))
	}
	if len(rows) == 0 {
		return
	}
	s.WriteString("**Latency** (sockperf ping-pong, 64-byte messages, half round trip, µs; median (min – max)):\n\n")
	s.WriteString("| variant | p50 | p99 | p99.9 |\n|---|--:|--:|--:|\n")
	s.WriteString(strings.Join(rows, "\n") + "\n\n")
}

// tcpTable writes the TCP figures of the variants that measured them.
func tcpTable(s *section, vs []datapathVariant) {
	var rows []string
	for _, v := range vs {
		sm := v.Summary
		if sm.TCPGbps == nil {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", v.label(), figure.Median(sm.TCPGbps, "%.2f"),
			figure.Span(sm.TCPGbps, "%.2f"), figure.Median(sm.Retransmits, "%.0f")))
	}
	if len(rows) == 0 {
		return
	}
	s.WriteString("**TCP** (iperf3, one stream):\n\n| variant | Gbit/s | min – max | retransmits |\n|---|--:|--:|--:|\n")
	s.WriteString(strings.Join(rows, "\n") + "\n\n")
}

// loss is how much of what was offered did not arrive, from the medians.
func loss(rx, offered *figure.Stat) string {
	if rx == nil || offered == nil || offered.Median == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", max(0, 100*(1-rx.Median/offered.Median)))
}

// cpuCell is each CPU's busy share, with its softirq share where known.
func cpuCell(busy []float64, shares []cpustat.Share) string {
	var parts []string
	for _, b := range busy {
		parts = append(parts, fmt.Sprintf("%.0f%%", b))
	}
	for _, sh := range shares {
		parts = append(parts, fmt.Sprintf("%.0f%% (%.0f%%)", sh.Busy, sh.Softirq))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " / ")
}

// daemonCell is each ringnetd's CPU share, by node name.
func daemonCell(m map[string]*figure.Stat) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, node := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %s", node, figure.Median(m[node], "%.0f%%")))
	}
	return strings.Join(parts, ", ")
}

// spread is the highest figure of series over the lowest median.
func spread(series []chart.Series) float64 {
	lo, hi := math.Inf(1), 0.0
	for _, se := range series {
		for _, v := range se.Values {
			if v.Measured() && v.Median > 0 {
				lo, hi = min(lo, v.Median), max(hi, v.Median, v.Max)
			}
		}
	}
	return hi / lo
}
