// Package gobench reads what `go test -bench` prints, in the Go benchmark
// data format (https://go.dev/design/14313-benchmark-format): configuration
// lines ("key: value", such as goos, pkg and cpu) that hold until the next
// line with the same key, and result lines
//
//	BenchmarkName-GOMAXPROCS  iterations  value unit  value unit ...
//
// everything else (PASS, ok, test logs) is skipped. Each result carries the
// package its pkg line named; Summarise groups the results of -count runs
// by package and name and gives each unit's median and range over them.
//
// It is the small, strict subset of golang.org/x/perf/benchfmt that the
// benchmark report needs, without that module's dependencies. A parse
// allocates per line; nothing here runs on a hot path.
package gobench

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ringnet/ringnet/bench/internal/figure"
)

// Result is one result line.
type Result struct {
	Pkg   string // from the latest pkg: line; "" if none came before
	Name  string // without "Benchmark" and without the -GOMAXPROCS suffix: "Decode/IPv4UDP"
	Procs int    // GOMAXPROCS, from the suffix; 1 when there is none
	Iters int64
	// Values by unit: "ns/op", "B/op", "allocs/op", and whatever the
	// benchmark reported with b.ReportMetric.
	Values map[string]float64
}

// Output is one `go test -bench` run, of one or more packages.
type Output struct {
	// Config holds the first value each configuration key had (goos,
	// goarch, cpu, and any the caller wrote above the output, such as
	// "command: go test ..."), except pkg, which every Result carries.
	Config  map[string]string
	Results []Result
}

// Parse reads r to its end. A result line it cannot read is an error that
// names the line; a line that only looks like one (a log line starting
// with "Benchmark" but no iteration count) is skipped.
func Parse(r io.Reader) (*Output, error) {
	out := &Output{Config: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pkg, lineNo := "", 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if key, val, ok := configLine(line); ok {
			if key == "pkg" {
				pkg = val
			} else if _, seen := out.Config[key]; !seen {
				out.Config[key] = val
			}
			continue
		}
		res, ok, err := resultLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", lineNo, line, err)
		}
		if ok {
			res.Pkg = pkg
			out.Results = append(out.Results, res)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	return out, nil
}

// configLine reads "key: value", where key starts with a lower-case letter
// and has no space or upper-case letter.
func configLine(line string) (key, val string, ok bool) {
	key, val, ok = strings.Cut(line, ":")
	if !ok || key == "" {
		return "", "", false
	}
	first, _ := utf8.DecodeRuneInString(key)
	if !unicode.IsLower(first) {
		return "", "", false
	}
	for _, c := range key {
		if unicode.IsSpace(c) || unicode.IsUpper(c) {
			return "", "", false
		}
	}
	if val != "" && val[0] != ' ' && val[0] != '\t' {
		return "", "", false // "http://...": not a key
	}
	return key, strings.TrimSpace(val), true
}

// resultLine reads a result line; ok is false for a line that is not one.
func resultLine(line string) (res Result, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 || !isBenchName(f[0]) {
		return res, false, nil
	}
	if len(f) < 2 {
		return res, false, nil // the name alone: a log line, or a benchmark that printed before its figures
	}
	iters, perr := strconv.ParseInt(f[1], 10, 64)
	if perr != nil {
		return res, false, nil // "BenchmarkX logged something": not a result
	}
	if len(f)%2 != 0 {
		return res, false, fmt.Errorf("values and units do not pair up")
	}
	res.Name, res.Procs = splitProcs(strings.TrimPrefix(f[0], "Benchmark"))
	res.Iters = iters
	res.Values = make(map[string]float64, (len(f)-2)/2)
	for i := 2; i < len(f); i += 2 {
		v, perr := strconv.ParseFloat(f[i], 64)
		if perr != nil {
			return res, false, fmt.Errorf("value %q: %w", f[i], perr)
		}
		res.Values[f[i+1]] = v
	}
	return res, true, nil
}

// isBenchName reports whether s is "Benchmark" followed by nothing or by a
// character that is not a lower-case letter.
func isBenchName(s string) bool {
	rest, ok := strings.CutPrefix(s, "Benchmark")
	if !ok {
		return false
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return rest == "" || !unicode.IsLower(r)
}

// splitProcs cuts the -GOMAXPROCS suffix off a name. As in benchfmt, a
// name whose last part ends in -digits is read as having one.
func splitProcs(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i < strings.LastIndexByte(name, '/') {
		return name, 1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n <= 0 {
		return name, 1
	}
	return name[:i], n
}

// Summary is one benchmark's results over its runs.
type Summary struct {
	Pkg, Name string
	Runs      int
	// Stats by unit: the median, minimum and maximum over runs.
	Stats map[string]*figure.Stat
}

// Summarise groups results by package and name, in the order each first
// appeared.
func Summarise(results []Result) []Summary {
	type key struct{ pkg, name string }
	var order []key
	values := map[key]map[string][]float64{}
	runs := map[key]int{}
	for _, r := range results {
		k := key{r.Pkg, r.Name}
		if values[k] == nil {
			values[k] = map[string][]float64{}
			order = append(order, k)
		}
		runs[k]++
		for unit, v := range r.Values {
			values[k][unit] = append(values[k][unit], v)
		}
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		s := Summary{Pkg: k.pkg, Name: k.name, Runs: runs[k], Stats: map[string]*figure.Stat{}}
		for unit, vs := range values[k] {
			s.Stats[unit] = figure.Of(vs)
		}
		out = append(out, s)
	}
	return out
}

// Units lists the units of s, ns/op first, then B/op and allocs/op, then
// the rest sorted.
func (s Summary) Units() []string {
	var std, rest []string
	for _, u := range []string{"ns/op", "B/op", "allocs/op"} {
		if s.Stats[u] != nil {
			std = append(std, u)
		}
	}
	for u := range s.Stats {
		if !slices.Contains(std, u) {
			rest = append(rest, u)
		}
	}
	slices.Sort(rest)
	return append(std, rest...)
}
