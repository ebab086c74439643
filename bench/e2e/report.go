package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/sockperf"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// Report is everything one benchmark run measured: the raw figures of every
// round and their summaries. It is what --json writes.
type Report struct {
	Meta     Meta               `json:"meta"`
	Variants []*VariantReport   `json:"variants"`
	Ratios   map[string]float64 `json:"ratios_of_median_rx_pps"`
}

// Meta describes the run and the machine.
type Meta struct {
	program.Meta
	WarmupSeconds  float64  `json:"warmup_seconds"`
	WindowSeconds  float64  `json:"window_seconds"`
	LatencySeconds int      `json:"latency_seconds,omitempty"`
	Frame          string   `json:"frame"`
	Method         []string `json:"method"`
}

// VariantReport holds one variant's rounds and summary.
type VariantReport struct {
	program.Variant
	Runs    []*RunResult `json:"runs"`
	Summary Summary      `json:"summary"`
}

// RunResult is one round of one variant.
type RunResult struct {
	Round      int                 `json:"round"`
	Error      string              `json:"error,omitempty"`
	Throughput *trafgen.Throughput `json:"throughput,omitempty"`
	Latency    *sockperf.Latency   `json:"latency,omitempty"`
	Counters   map[string]uint64   `json:"counters,omitempty"`       // the variant's own, read after the window
	Final      map[string]uint64   `json:"final_counters,omitempty"` // at shutdown (ringnetd, asaviefwd)
}

// Summary summarises the rounds that succeeded.
type Summary struct {
	program.Tally
	RxPPS      *figure.Stat `json:"rx_pps,omitempty"`
	OfferedPPS *figure.Stat `json:"offered_pps,omitempty"`
	CPUBusy    []float64    `json:"median_cpu_busy_percent,omitempty"`
	CPUNsPkt   *figure.Stat `json:"cpu_ns_per_packet,omitempty"`
	P50us      *figure.Stat `json:"p50_us,omitempty"`
	P99us      *figure.Stat `json:"p99_us,omitempty"`
	P999us     *figure.Stat `json:"p99_9_us,omitempty"`
}

func (r *Report) variant(v variant) *VariantReport {
	for _, vr := range r.Variants {
		if vr.ID == v.ID {
			return vr
		}
	}
	vr := &VariantReport{Variant: program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc}}
	r.Variants = append(r.Variants, vr)
	return vr
}

// Failed reports whether any round of any variant failed.
func (r *Report) Failed() bool {
	return slices.ContainsFunc(r.Variants, func(v *VariantReport) bool { return v.Summary.Failed() })
}

func (r *Report) summarise() {
	for _, v := range r.Variants {
		var s Summary
		var rx, off, nspkt, p50, p99, p999 []float64
		var cpus [][]float64
		for _, run := range v.Runs {
			if run.Error != "" {
				s.FailedRuns++
				continue
			}
			s.OKRuns++
			if tp := run.Throughput; tp != nil {
				rx = append(rx, tp.RxPPS)
				off = append(off, tp.OfferedPPS)
				for i, c := range tp.CPU {
					if i >= len(cpus) {
						cpus = append(cpus, nil)
					}
					cpus[i] = append(cpus[i], c.Busy)
				}
				if tp.CPUNsPerPacket > 0 {
					nspkt = append(nspkt, tp.CPUNsPerPacket)
				}
			}
			if l := run.Latency; l != nil {
				p50 = append(p50, l.P50us)
				p99 = append(p99, l.P99us)
				p999 = append(p999, l.P999us)
			}
		}
		s.RxPPS, s.OfferedPPS, s.CPUNsPkt = figure.Of(rx), figure.Of(off), figure.Of(nspkt)
		s.P50us, s.P99us, s.P999us = figure.Of(p50), figure.Of(p99), figure.Of(p999)
		for _, c := range cpus {
			s.CPUBusy = append(s.CPUBusy, figure.Of(c).Median)
		}
		v.Summary = s
	}
	r.Ratios = map[string]float64{}
	med := func(id string) float64 {
		for _, v := range r.Variants {
			if v.ID == id && v.Summary.RxPPS != nil {
				return v.Summary.RxPPS.Median
			}
		}
		return 0
	}
	for _, p := range [][2]string{{"c", "a"}, {"d", "a"}, {"c", "b"}, {"d", "b"}} {
		if n, d := med(p[0]), med(p[1]); n > 0 && d > 0 {
			r.Ratios[p[0]+"/"+p[1]] = n / d
		}
	}
}

func kpps(v float64) string { return fmt.Sprintf("%.0f", v/1000) }

// loss is how much of what the generator offered did not reach pod B, from the
// medians, in percent.
func loss(s Summary) string {
	if s.RxPPS == nil || s.OfferedPPS == nil || s.OfferedPPS.Median == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", max(0, 100*(1-s.RxPPS.Median/s.OfferedPPS.Median)))
}

func nsPkt(s *figure.Stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", s.Median)
}

func us(s *figure.Stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", s.Median)
}

func ratioList(r map[string]float64) string {
	var parts []string
	for _, k := range []string{"c/a", "d/a", "c/b", "d/b"} {
		if v, ok := r[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// WriteTable writes the human-readable summary.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\nringnet e2e: 64-byte UDP, pod A -> pod B, one node; %d round(s), %gs window after %gs warm-up\n",
		r.Meta.Runs, r.Meta.WindowSeconds, r.Meta.WarmupSeconds)
	fmt.Fprintf(w, "%s, %d cores, kernel %s\n\n", r.Meta.CPUModel, r.Meta.Cores, r.Meta.Kernel)
	const row = "%-22s %8s %6s %6s %8s %6s %8s %7s %7s %7s %8s %5s\n"
	fmt.Fprintf(w, row, "variant", "rx kpps", "min", "max", "offered", "loss%", "cpu0/1%", "ns/pkt", "p50 µs", "p99 µs", "p99.9 µs", "ok")
	for _, v := range r.Variants {
		s := v.Summary
		name := "(" + v.ID + ") " + v.Name
		ok := fmt.Sprintf("%d/%d", s.OKRuns, s.OKRuns+s.FailedRuns)
		if s.RxPPS == nil {
			fmt.Fprintf(w, row, name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", ok)
			continue
		}
		var cpu []string
		for _, c := range s.CPUBusy {
			cpu = append(cpu, fmt.Sprintf("%.0f", c))
		}
		fmt.Fprintf(w, row, name, kpps(s.RxPPS.Median), kpps(s.RxPPS.Min), kpps(s.RxPPS.Max), kpps(s.OfferedPPS.Median),
			loss(s), strings.Join(cpu, "/"), nsPkt(s.CPUNsPkt), us(s.P50us), us(s.P99us), us(s.P999us), ok)
	}
	fmt.Fprintf(w, "\nrx: pod B eth0 rx_packets rate; offered: what the generator put into pod A's eth0; loss: 1 - rx/offered (near 0: the\n"+
		"sender, not the forwarding, is the limit); cpu0/1%%: busy share of each CPU;\n"+
		"ns/pkt: busy CPU time of the whole machine (the generator and pod B included) per received packet; latency: sockperf ping-pong, half RTT.\n")
	if len(r.Ratios) > 0 {
		fmt.Fprintf(w, "ratios of median rx pps: %s\n", ratioList(r.Ratios))
	}
	for _, v := range r.Variants {
		for _, run := range v.Runs {
			if run.Error != "" {
				fmt.Fprintf(w, "FAILED (%s) round %d: %s\n", v.ID, run.Round, run.Error)
			}
		}
	}
}

// WriteMarkdown writes a section for docs/benchmarks.md.
func (r *Report) WriteMarkdown(path string) error {
	m := r.Meta
	b := program.NewSection("End to end: pod to pod on one node", m.Meta)
	fmt.Fprintf(b, "throughput over a %g s window after %g s of warm-up", m.WindowSeconds, m.WarmupSeconds)
	if m.LatencySeconds > 0 {
		fmt.Fprintf(b, "; latency from a %d s sockperf ping-pong", m.LatencySeconds)
	}
	b.WriteString(".\n\n")
	b.WriteString("| variant | rx pps, median | min – max | offered pps | loss | CPU 0 / 1 busy | CPU ns per packet | p50 µs | p99 µs | p99.9 µs |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, v := range r.Variants {
		s := v.Summary
		if s.RxPPS == nil {
			fmt.Fprintf(b, "| (%s) %s | failed | | | | | | | | |\n", v.ID, v.Name)
			continue
		}
		var cpu []string
		for _, c := range s.CPUBusy {
			cpu = append(cpu, fmt.Sprintf("%.0f%%", c))
		}
		fmt.Fprintf(b, "| (%s) %s | %s | %s – %s | %s | %s%% | %s | %s | %s | %s | %s |\n", v.ID, v.Name,
			figure.Group(s.RxPPS.Median), figure.Group(s.RxPPS.Min), figure.Group(s.RxPPS.Max), figure.Group(s.OfferedPPS.Median),
			loss(s), strings.Join(cpu, " / "), nsPkt(s.CPUNsPkt), us(s.P50us), us(s.P99us), us(s.P999us))
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(b, "\nRatios of the medians: %s.\n", ratioList(r.Ratios))
	}
	var vs []program.Variant
	for _, v := range r.Variants {
		vs = append(vs, v.Variant)
	}
	return b.Save(path, vs, m.Method, r.Failed())
}
