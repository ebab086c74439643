package main

import (
	"fmt"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/chart"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/machine"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// The IDs of bench/slowpath's baselines: the kernel path among the node ↔
// pod variants, and among the flood variants no flood and the flood
// dropped at the token bucket (to_host_new=0, the flood's cost without the
// slow path's).
const (
	slowpathKernel  = "k"
	slowpathNoFlood = "none"
	slowpathDropped = "0"
	slowpathDefault = "default" // ringnetd's default limits, held to the target
)

// slowpathFloodTarget is the target for a punt flood (200k pps at
// the node's address): pod-to-pod throughput at most 10% lower than with
// no flood.
const slowpathFloodTarget = "≥ 0.9"

// slowpathReport is what bench/slowpath writes with --json: every round of
// every variant, by variant ID, and no summary (the report takes the
// medians and ranges).
type slowpathReport struct {
	Command       string  `json:"Command"`
	Date          string  `json:"Date"`
	Kernel        string  `json:"Kernel"`
	CPU           string  `json:"CPU"`
	Go            string  `json:"Go"`
	Cores         int     `json:"Cores"`
	Runs          int     `json:"Runs"`
	WindowSeconds float64 `json:"WindowSeconds"`
	FloodPPS      int     `json:"FloodPPS"`
	// The variants in the order they ran.
	HostVariants  []program.Variant               `json:"HostVariants"`
	FloodVariants []program.Variant               `json:"FloodVariants"`
	Method        []string                        `json:"Method"`
	Host          map[string][]slowpathHostRound  `json:"Host"`
	Flood         map[string][]slowpathFloodRound `json:"Flood"`
}

// slowpathHostRound is one round of node ↔ pod A: TCP both ways in
// Gbit/s, latency in µs.
type slowpathHostRound struct {
	ToPodGbps  float64 `json:"ToPodGbps"`
	ToHostGbps float64 `json:"ToHostGbps"`
	Latency    struct {
		P50  float64 `json:"P50"`
		P99  float64 `json:"P99"`
		P999 float64 `json:"P999"`
	} `json:"Latency"`
	Error string `json:"Error"`
}

// slowpathFloodRound is one round of pod A → pod B under a flood: TCP in
// Gbit/s, the flood's frames per second as the kernel and ringnetd
// counted them.
type slowpathFloodRound struct {
	PodToPodGbps float64 `json:"PodToPodGbps"`
	OfferedPPS   float64 `json:"OfferedPPS"`
	ToHostPPS    float64 `json:"ToHostPPS"`
	OverLimitPPS float64 `json:"OverLimitPPS"`
	QueueFullPPS float64 `json:"QueueFullPPS"`
	RingFullPPS  float64 `json:"RingFullPPS"`
	Error        string  `json:"Error"`
}

func (r *slowpathReport) meta() program.Meta {
	return program.Meta{Command: r.Command, Date: r.Date, Runs: r.Runs,
		Machine: machine.Machine{Kernel: r.Kernel, CPUModel: r.CPU, Cores: r.Cores, GoVersion: r.Go}}
}

// over summarises f over the rounds that did not fail; nil if none.
func over[T any](rounds []T, failed func(T) bool, f func(T) float64) *figure.Stat {
	var xs []float64
	for _, x := range rounds {
		if !failed(x) {
			xs = append(xs, f(x))
		}
	}
	return figure.Of(xs)
}

func hostFailed(x slowpathHostRound) bool   { return x.Error != "" }
func floodFailed(x slowpathFloodRound) bool { return x.Error != "" }

// roundsOK is "ok/all" for a variant's rounds.
func roundsOK[T any](rounds []T, failed func(T) bool) string {
	ok := 0
	for _, x := range rounds {
		if !failed(x) {
			ok++
		}
	}
	return fmt.Sprintf("%d/%d", ok, len(rounds))
}

// slowpathHost is a node ↔ pod variant's figures.
type slowpathHost struct {
	program.Variant
	toPod, toHost, p50, p99, p999 *figure.Stat
	ok                            string
}

// slowpathFlood is a flood variant's figures.
type slowpathFlood struct {
	program.Variant
	gbps, offered, ringFull, toHost, overLimit, queueFull *figure.Stat
	ok                                                    string
}

func renderSlowpath(s *section, data []byte) (outcome, error) {
	r, err := decode(data, "variants (HostVariants, FloodVariants): measure again with the current bench/slowpath",
		func(r *slowpathReport) int { return len(r.HostVariants) + len(r.FloodVariants) })
	if err != nil {
		return outcome{}, err
	}
	m := r.meta()
	s.header(m, fmt.Sprintf("%d round(s) per variant, interleaved; TCP from %g s iperf3 runs (one stream), latency from %g s sockperf ping-pongs, the flood at %s pps. "+
		"Each figure is the median over rounds, the min – max of the rounds beside it.", r.Runs, r.WindowSeconds, r.WindowSeconds, figure.Group(float64(r.FloodPPS))))

	var hosts []slowpathHost
	for _, v := range r.HostVariants {
		rs := r.Host[v.ID]
		hosts = append(hosts, slowpathHost{Variant: v,
			toPod:  over(rs, hostFailed, func(x slowpathHostRound) float64 { return x.ToPodGbps }),
			toHost: over(rs, hostFailed, func(x slowpathHostRound) float64 { return x.ToHostGbps }),
			p50:    over(rs, hostFailed, func(x slowpathHostRound) float64 { return x.Latency.P50 }),
			p99:    over(rs, hostFailed, func(x slowpathHostRound) float64 { return x.Latency.P99 }),
			p999:   over(rs, hostFailed, func(x slowpathHostRound) float64 { return x.Latency.P999 }),
			ok:     roundsOK(rs, hostFailed)})
	}
	var floods []slowpathFlood
	for _, v := range r.FloodVariants {
		rs := r.Flood[v.ID]
		floods = append(floods, slowpathFlood{Variant: v,
			gbps:      over(rs, floodFailed, func(x slowpathFloodRound) float64 { return x.PodToPodGbps }),
			offered:   over(rs, floodFailed, func(x slowpathFloodRound) float64 { return x.OfferedPPS }),
			ringFull:  over(rs, floodFailed, func(x slowpathFloodRound) float64 { return x.RingFullPPS }),
			toHost:    over(rs, floodFailed, func(x slowpathFloodRound) float64 { return x.ToHostPPS }),
			overLimit: over(rs, floodFailed, func(x slowpathFloodRound) float64 { return x.OverLimitPPS }),
			queueFull: over(rs, floodFailed, func(x slowpathFloodRound) float64 { return x.QueueFullPPS }),
			ok:        roundsOK(rs, floodFailed)})
	}

	if err := slowpathChart(s, hosts, floods); err != nil {
		return outcome{}, err
	}
	if len(hosts) > 0 {
		s.WriteString("**Node ↔ pod A** (TCP: iperf3, one stream, Gbit/s; latency: sockperf ping-pong, 64-byte messages, half round trip, µs; median (min – max)):\n\n")
		s.WriteString("| variant | node → pod TCP | pod → node TCP | p50 | p99 | p99.9 | rounds ok |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, h := range hosts {
			fmt.Fprintf(s, "| (%s) %s | %s | %s | %s | %s | %s | %s |\n", h.ID, h.Name, cell(h.toPod, "%.2f"), cell(h.toHost, "%.2f"),
				cell(h.p50, "%.1f"), cell(h.p99, "%.1f"), cell(h.p999, "%.1f"), h.ok)
		}
		s.WriteString("\n")
	}
	if len(floods) > 0 {
		fmt.Fprintf(s, "**Pod A → pod B under a punt flood** (TCP, iperf3, one stream, Gbit/s, while pod C sends 60-byte UDP frames to the node's address at %s pps, every one `to_host_new`, as the node never answers them; "+
			"the flood in frames per second as the kernel and ringnetd counted them; median (min – max)):\n\n", figure.Group(float64(r.FloodPPS)))
		s.WriteString("| variant | pod A → pod B TCP | flood offered | AF_XDP ring full | to host | over limit | queue full | rounds ok |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, f := range floods {
			fmt.Fprintf(s, "| (%s) %s | %s | %s | %s | %s | %s | %s | %s |\n", f.ID, f.Name, cell(f.gbps, "%.2f"), groupedCell(f.offered),
				groupedCell(f.ringFull), groupedCell(f.toHost), groupedCell(f.overLimit), groupedCell(f.queueFull), f.ok)
		}
		s.WriteString("\n")
	}
	rs := slowpathRatios(hosts, floods, r.FloodPPS)
	s.ratios("**Ratios** of the medians, measured in the same run:", rs)

	var notes []string
	for _, f := range floods {
		if f.ID != slowpathNoFlood && short(f.offered, r.FloodPPS) {
			notes = append(notes, fmt.Sprintf("(%s) %s: trafgen sent %s pps of the %s asked for (pod C's tx_packets), a lighter flood than asked.",
				f.ID, f.Name, figure.Group(f.offered.Median), figure.Group(float64(r.FloodPPS))))
		}
	}
	s.list("**Floods short of the rate asked for**:", notes)
	var failed []string
	for _, v := range r.HostVariants {
		for i, x := range r.Host[v.ID] {
			if x.Error != "" {
				failed = append(failed, fmt.Sprintf("(%s) round %d: %s", v.ID, i+1, x.Error))
			}
		}
	}
	for _, v := range r.FloodVariants {
		for i, x := range r.Flood[v.ID] {
			if x.Error != "" {
				failed = append(failed, fmt.Sprintf("(%s) round %d: %s", v.ID, i+1, x.Error))
			}
		}
	}
	s.list("**Failed rounds** (left out of the figures; the JSON keeps them):", failed)
	var vs []string
	for _, v := range append(append([]program.Variant(nil), r.HostVariants...), r.FloodVariants...) {
		vs = append(vs, fmt.Sprintf("**(%s) %s**: %s", v.ID, v.Name, v.Desc))
	}
	s.list("Variants:", vs)
	s.list("Method:", r.Method)
	return outcome{title: "Slow path", date: m.Date, machine: machineLine(m), targets: withTargets(rs)}, nil
}

// short reports whether a flood's median rate fell more than 10% below
// the rate asked for.
func short(offered *figure.Stat, pps int) bool {
	return offered != nil && offered.Median < 0.9*float64(pps)
}

// slowpathRatios are ringnetd's node ↔ pod figures against the kernel
// path's, and pod-to-pod throughput under each flood against no flood
// (the flood with ringnetd's default limits held to the target) and
// against the flood dropped at the bucket: what the slow path itself
// costs. The target speaks of a flood at pps: a run whose flood fell
// short of it has not met it, whatever the ratio.
func slowpathRatios(hosts []slowpathHost, floods []slowpathFlood, pps int) []ratio {
	var out []ratio
	add := func(what string, num, den *figure.Stat, target string) bool {
		if num == nil || den == nil || den.Median <= 0 {
			return false
		}
		out = append(out, newRatio(what, num.Median/den.Median, target))
		return true
	}
	for _, k := range hosts {
		if k.ID != slowpathKernel {
			continue
		}
		for _, h := range hosts {
			if h.ID == slowpathKernel {
				continue
			}
			for _, x := range []struct {
				what     string
				num, den *figure.Stat
			}{{"node → pod TCP", h.toPod, k.toPod}, {"pod → node TCP", h.toHost, k.toHost}, {"p50 latency", h.p50, k.p50}, {"p99 latency", h.p99, k.p99}} {
				add(fmt.Sprintf("%s / kernel path, %s (%s/%s)", h.Name, x.what, h.ID, k.ID), x.num, x.den, "")
			}
		}
	}
	var none, dropped *figure.Stat
	for _, f := range floods {
		switch f.ID {
		case slowpathNoFlood:
			none = f.gbps
		case slowpathDropped:
			dropped = f.gbps
		}
	}
	for _, f := range floods {
		if f.ID == slowpathNoFlood {
			continue
		}
		what, target := fmt.Sprintf("pod A → pod B TCP, %s / no flood", f.Name), ""
		if f.ID == slowpathDefault {
			target = slowpathFloodTarget
		}
		if !add(what, f.gbps, none, target) || target == "" || !short(f.offered, pps) {
			continue
		}
		r := &out[len(out)-1]
		r.What += fmt.Sprintf(" (the flood reached only %s of %s pps", figure.Group(f.offered.Median), figure.Group(float64(pps)))
		if r.Met {
			r.What += ": met at a lighter flood, so not counted"
			r.Met = false
		}
		r.What += ")"
	}
	for _, f := range floods {
		if f.ID == slowpathNoFlood || f.ID == slowpathDropped {
			continue
		}
		add(fmt.Sprintf("pod A → pod B TCP, %s / the flood dropped at the bucket (the slow path's share)", f.Name), f.gbps, dropped, "")
	}
	return out
}

// slowpathChart draws every TCP figure of the run: node ↔ pod A both ways
// by host variant, then pod A → pod B by flood variant.
func slowpathChart(s *section, hosts []slowpathHost, floods []slowpathFlood) error {
	n := len(hosts) + len(floods)
	if n == 0 {
		return nil
	}
	series := []chart.Series{
		{Name: "node → pod A", Color: chart.Palette[1]},
		{Name: "pod A → node", Color: chart.Palette[2]},
		{Name: "pod A → pod B", Color: chart.Palette[3]},
	}
	for i := range series {
		series[i].Values = make([]chart.Value, n)
		for j := range series[i].Values {
			series[i].Values[j] = chart.Missing
		}
	}
	var groups []string
	for i, h := range hosts {
		groups = append(groups, chartLabel(h.Variant))
		series[0].Values[i], series[1].Values[i] = value(h.toPod), value(h.toHost)
	}
	for i, f := range floods {
		groups = append(groups, chartLabel(f.Variant))
		series[2].Values[len(hosts)+i] = value(f.gbps)
	}
	return s.chart("slowpath-tcp.png", "TCP throughput through the slow path (iperf3, one stream): node ↔ pod A by datapath, pod A → pod B under each punt flood; median, min–max of the rounds",
		chart.Bars{Title: "TCP, one iperf3 stream: node ↔ pod, and pod → pod under a punt flood", YLabel: "Gbit/s",
			Groups: groups, Series: series, Labels: true})
}

// chartLabel is a variant's name for the chart's x axis: its ID on a line
// of its own, the name broken into lines of about 18 characters, so that
// seven groups fit side by side.
func chartLabel(v program.Variant) string {
	lines := []string{"(" + v.ID + ")"}
	var line string
	for _, w := range strings.Fields(v.Name) {
		if line != "" && len(line)+1+len(w) > 18 {
			lines, line = append(lines, line), ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}
