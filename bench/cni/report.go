package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/cni/cnitest"
	"golang.org/x/sys/unix"
)

// TargetAddP99Ms is the target for ringnet's ADD latency.
const TargetAddP99Ms = 20

// Report is everything one run measured; --json writes it.
type Report struct {
	Meta    Meta            `json:"meta"`
	Plugins []*PluginReport `json:"plugins"`
	// PluginSteps split ringnet's counted ADDs into the steps its plugin
	// timed itself (cni.TimingsEnv), and what lies outside its code.
	PluginSteps []PhaseReport `json:"plugin_steps,omitempty"`
	// Phases split ringnet's ADD and DEL into the plugin's steps, redone
	// in-process (--phases).
	Phases []PhaseReport `json:"phases,omitempty"`
}

// PhaseReport is one step of ringnet's ADD or DEL, timed in-process.
type PhaseReport struct {
	Name    string  `json:"name"`
	Summary Summary `json:"summary"`
}

// Meta describes the run and the machine.
type Meta struct {
	Command       string `json:"command"`
	Date          string `json:"date"`
	Kernel        string `json:"kernel"`
	CPUModel      string `json:"cpu_model"`
	Cores         int    `json:"cores"`
	LoadAvg       string `json:"load_average_at_start"`
	GoVersion     string `json:"go_version"`
	Cnitool       string `json:"cnitool"`
	DebianPlugins string `json:"debian_plugins"`
	Pods          int    `json:"pods"`
	Runs          int    `json:"runs"`
	Method        string `json:"method"`
}

// PluginReport holds one plugin's samples (milliseconds, in call order)
// and their summaries.
type PluginReport struct {
	ID    string    `json:"id"`
	Name  string    `json:"name"`
	Desc  string    `json:"description"`
	AddMs []float64 `json:"add_ms"`
	DelMs []float64 `json:"del_ms"`
	Add   Summary   `json:"add"`
	Del   Summary   `json:"del"`
}

// Summary condenses samples; percentiles are nearest-rank.
type Summary struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func summarize(samples []float64) Summary {
	s := Summary{N: len(samples)}
	if s.N == 0 {
		return s
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := func(p float64) float64 { return sorted[max(0, int(math.Ceil(p*float64(s.N)))-1)] }
	s.P50, s.P90, s.P99, s.Max = rank(0.50), rank(0.90), rank(0.99), sorted[s.N-1]
	for _, v := range sorted {
		s.Mean += v
	}
	s.Mean /= float64(s.N)
	return s
}

func newReport(o options) *Report {
	m := Meta{Command: o.Command, Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(),
		GoVersion: runtime.Version(), Cnitool: cnitest.CnitoolVersion, Pods: o.Pods, Runs: o.Runs,
		Method: "wall time of one cnitool process (exec to exit) per call, started from a thread in the node namespace; " +
			"pods ADDed one after the other, then DELed; plugins alternate which goes first each round; one uncounted warm-up ADD+DEL per plugin"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins").Output(); err == nil {
		m.DebianPlugins = "containernetworking-plugins " + string(out)
	}
	return &Report{Meta: m}
}

func (r *Report) finish() {
	for _, p := range r.Plugins {
		p.Add, p.Del = summarize(p.AddMs), summarize(p.DelMs)
	}
}

func (r *Report) plugin(id string) *PluginReport {
	for _, p := range r.Plugins {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// verdict says whether ringnet met the ADD target.
func (r *Report) verdict() string {
	p := r.plugin("ringnet")
	if p == nil || p.Add.N == 0 {
		return ""
	}
	word := "met"
	if p.Add.P99 > TargetAddP99Ms {
		word = "missed"
	}
	return fmt.Sprintf("target ringnet ADD p99 <= %d ms: %s (%.1f ms)", TargetAddP99Ms, word, p.Add.P99)
}

// WriteTable prints the summary as a plain table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "\nCNI latency, %d pods x %d rounds, via cnitool %s (ms)\n", r.Meta.Pods, r.Meta.Runs, r.Meta.Cnitool)
	fmt.Fprintf(w, "%-28s %-4s %5s %8s %8s %8s %8s %8s\n", "plugin", "op", "n", "p50", "p90", "p99", "max", "mean")
	for _, p := range r.Plugins {
		for _, row := range []struct {
			op string
			s  Summary
		}{{"ADD", p.Add}, {"DEL", p.Del}} {
			fmt.Fprintf(w, "%-28s %-4s %5d %8.1f %8.1f %8.1f %8.1f %8.1f\n", p.Name, row.op, row.s.N,
				row.s.P50, row.s.P90, row.s.P99, row.s.Max, row.s.Mean)
		}
	}
	if v := r.verdict(); v != "" {
		fmt.Fprintln(w, v)
	}
	for _, t := range r.stepTables() {
		if len(t.steps) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nringnet's %s (ms)\n", t.title)
		fmt.Fprintf(w, "%-60s %5s %8s %8s %8s %8s\n", "step", "n", "p50", "p90", "p99", "max")
		for _, p := range t.steps {
			fmt.Fprintf(w, "%-60s %5d %8.1f %8.1f %8.1f %8.1f\n", p.Name, p.Summary.N, p.Summary.P50, p.Summary.P90, p.Summary.P99, p.Summary.Max)
		}
	}
	return nil
}

// stepTable is one of ringnet's step-by-step timings, titled.
type stepTable struct {
	title string
	steps []PhaseReport
}

// stepTables are the report's step tables, empty ones included.
func (r *Report) stepTables() []stepTable {
	return []stepTable{
		{"ADDs above, step by step as the exec'd plugin timed them itself", r.PluginSteps},
		{fmt.Sprintf("ADD and DEL by phase, redone in-process as the plugin does them (no exec), %d pods", r.Meta.Pods), r.Phases},
	}
}

// WriteMarkdown writes the report as a Markdown section.
func (r *Report) WriteMarkdown(w io.Writer) error {
	m := r.Meta
	fmt.Fprintf(w, "### CNI ADD/DEL latency (%s)\n\n", m.Date)
	fmt.Fprintf(w, "- command: `%s`\n", m.Command)
	fmt.Fprintf(w, "- machine: %s, %d cores, kernel %s, load average at start %s\n", m.CPUModel, m.Cores, m.Kernel, m.LoadAvg)
	fmt.Fprintf(w, "- %s, cnitool %s, %s\n", m.GoVersion, m.Cnitool, m.DebianPlugins)
	fmt.Fprintf(w, "- %d pods x %d rounds per plugin; %s\n\n", m.Pods, m.Runs, m.Method)
	fmt.Fprintln(w, "| plugin | op | n | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, p := range r.Plugins {
		for _, row := range []struct {
			op string
			s  Summary
		}{{"ADD", p.Add}, {"DEL", p.Del}} {
			fmt.Fprintf(w, "| %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f |\n", p.Name, row.op, row.s.N,
				row.s.P50, row.s.P90, row.s.P99, row.s.Max, row.s.Mean)
		}
	}
	fmt.Fprintln(w)
	for _, p := range r.Plugins {
		fmt.Fprintf(w, "- %s: %s\n", p.Name, p.Desc)
	}
	if v := r.verdict(); v != "" {
		fmt.Fprintf(w, "\n%s\n", v)
	}
	for _, t := range r.stepTables() {
		if len(t.steps) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nringnet's %s:\n\n", t.title)
		fmt.Fprintln(w, "| step | n | p50 ms | p90 ms | p99 ms | max ms |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
		for _, p := range t.steps {
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", p.Name, p.Summary.N, p.Summary.P50, p.Summary.P90, p.Summary.P99, p.Summary.Max)
		}
	}
	return nil
}

// WriteJSON writes the report with every sample.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
