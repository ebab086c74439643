package main

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/chart"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// source is one benchmark's input in the run directory and the region it
// fills.
type source struct {
	name   string // the region, and the stem of the chart files
	file   string // in the run directory
	target string // the make target that writes it
	render func(s *section, data []byte) (outcome, error)
}

var sources = []source{
	{"micro", "micro.txt", "bench-micro", renderMicro},
	{"e2e", "e2e.json", "bench-e2e", renderE2E},
	{"crossnode", "crossnode.json", "bench-crossnode", renderCrossnode},
	{"cni", "cni.json", "cni-bench", renderCNI},
	{"policy", "policy.json", "bench-policy", renderPolicy},
	{"slowpath", "slowpath.json", "bench-slowpath", renderSlowpath},
}

// summaryName is the region that gathers every benchmark's targets.
const summaryName = "summary"

func regionNames() []string {
	names := []string{summaryName}
	for _, s := range sources {
		names = append(names, s.name)
	}
	return names
}

func inputFiles() []string {
	var files []string
	for _, s := range sources {
		files = append(files, s.file)
	}
	return files
}

// outcome is what a benchmark's region tells the summary.
type outcome struct {
	name    string // the source's
	title   string // "End to end, one node"
	date    string
	machine string
	targets []ratio // every ratio or figure with a target
}

// ratio compares two figures of one run (or holds one figure, for an
// absolute target), as bench/crossnode reports them.
type ratio struct {
	What   string  `json:"what"`
	Value  float64 `json:"value"`
	Target string  `json:"target,omitempty"` // "≥ 1.5", "≤ 20"; empty: for information
	Met    bool    `json:"met"`
	Shown  string  `json:"-"` // the value as the table shows it; "": to two decimals
}

// newRatio is what over target, met when value is on target's side.
func newRatio(what string, value float64, target string) ratio {
	return ratio{What: what, Value: value, Target: target, Met: meets(value, target)}
}

// meets reads a target, "≥ 1.5" or "≤ 1" (or >=, <=), and says whether v
// meets it; an empty or unreadable target is not met.
func meets(v float64, target string) bool {
	t := strings.TrimSpace(target)
	for _, op := range []struct {
		prefix string
		ok     func(v, x float64) bool
	}{
		{"≥", func(v, x float64) bool { return v >= x }}, {">=", func(v, x float64) bool { return v >= x }},
		{"≤", func(v, x float64) bool { return v <= x }}, {"<=", func(v, x float64) bool { return v <= x }},
	} {
		if rest, ok := strings.CutPrefix(t, op.prefix); ok {
			x, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return err == nil && op.ok(v, x)
		}
	}
	return false
}

// verdict is the ratio's last column: for information, met, or missed.
func (r ratio) verdict() string {
	switch {
	case r.Target == "":
		return "for information"
	case r.Met:
		return "met"
	}
	return "**missed**"
}

func (r ratio) shown() string {
	if r.Shown != "" {
		return r.Shown
	}
	return fmt.Sprintf("%.2f", r.Value)
}

// decode reads a benchmark's JSON report, which must hold some of what
// holds counts (variants, plugins, points).
func decode[T any](data []byte, what string, holds func(*T) int) (*T, error) {
	r := new(T)
	if err := json.Unmarshal(data, r); err != nil {
		return nil, err
	}
	if holds(r) == 0 {
		return nil, fmt.Errorf("no %s", what)
	}
	return r, nil
}

// section is one region's markdown, being written, and the charts it
// wrote.
type section struct {
	strings.Builder
	imgDir string   // where the PNG files go
	imgRel string   // the same folder, relative to benchmarks.md, for the links
	charts []string // file names written so far
}

func newSection(imgDir, imgRel string) *section {
	return &section{imgDir: imgDir, imgRel: imgRel}
}

// machineLine describes where a run was measured, from what it recorded.
func machineLine(m program.Meta) string {
	var parts []string
	if m.CPUModel != "" {
		parts = append(parts, m.CPUModel)
	}
	if m.Cores > 0 {
		parts = append(parts, fmt.Sprintf("%d cores", m.Cores))
	}
	if m.Kernel != "" {
		parts = append(parts, fmt.Sprintf("kernel `%s`", m.Kernel))
	}
	if m.GoVersion != "" {
		parts = append(parts, m.GoVersion)
	}
	if len(parts) == 0 {
		return "not recorded"
	}
	return strings.Join(parts, ", ")
}

// header opens a region: when and with what command the figures were
// measured, on which machine, and how (a sentence, or "").
func (s *section) header(m program.Meta, how string) {
	date, command := normDate(m.Date), m.Command
	if date == "" {
		date = "(date not recorded)"
	}
	if command == "" {
		command = "(command not recorded)"
	}
	fmt.Fprintf(s, "Measured %s with:\n\n```\n%s\n```\n\nMachine: %s.", date, command, machineLine(m))
	if how != "" {
		fmt.Fprintf(s, " %s", how)
	}
	s.WriteString("\n\n")
}

// dateFormat is how the benchmarks (program.NewMeta) write a run's date.
const dateFormat = "2006-01-02 15:04 UTC"

// normDate writes an RFC 3339 date (bench/cni's) as the others do.
func normDate(d string) string {
	if t, err := time.Parse(time.RFC3339, d); err == nil {
		return t.UTC().Format(dateFormat)
	}
	return d
}

// pngWriter is a chart.
type pngWriter interface{ WritePNG(path string) error }

// chart writes c as file (in the image folder) and embeds it, with alt as
// its text.
func (s *section) chart(file, alt string, c pngWriter) error {
	if err := c.WritePNG(filepath.Join(s.imgDir, file)); err != nil {
		return fmt.Errorf("chart %s: %w", file, err)
	}
	s.charts = append(s.charts, file)
	fmt.Fprintf(s, "![%s](%s)\n\n", alt, path.Join(s.imgRel, file))
	return nil
}

// ratios writes a table of rs.
func (s *section) ratios(title string, rs []ratio) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(s, "%s\n\n| | value | target | |\n|---|--:|---|---|\n", title)
	for _, r := range rs {
		fmt.Fprintf(s, "| %s | %s | %s | %s |\n", r.What, r.shown(), orDash(r.Target), r.verdict())
	}
	s.WriteString("\n")
}

// list writes a bold title and a bulleted list, if there are items.
func (s *section) list(title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(s, "%s\n\n", title)
	for _, it := range items {
		fmt.Fprintf(s, "- %s\n", it)
	}
	s.WriteString("\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// value is a summary for a chart: Missing when no round measured it.
func value(st *figure.Stat) chart.Value {
	if st == nil || st.N == 0 {
		return chart.Missing
	}
	return chart.Value{Median: st.Median, Min: st.Min, Max: st.Max}
}

// cell is a figure's median and range in one table cell: "18.6 (17.0 –
// 20.2)", or the median alone when one round measured it.
func cell(st *figure.Stat, format string) string {
	if st == nil {
		return "-"
	}
	if st.N <= 1 || st.Min == st.Max {
		return fmt.Sprintf(format, st.Median)
	}
	return fmt.Sprintf(format+" (%s)", st.Median, figure.Span(st, format))
}

// groupedCell is a large figure's median and range in one table cell,
// with thousands separators: "190 940 (180 200 – 195 010)".
func groupedCell(st *figure.Stat) string {
	med, span := figure.Grouped(st)
	if st == nil || st.N <= 1 || st.Min == st.Max {
		return med
	}
	return med + " (" + span + ")"
}
