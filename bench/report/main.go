// Command report writes docs/benchmarks.md from what the benchmarks
// measured: it reads a run directory, in which `make bench` (or one of its
// parts) left each benchmark's --json report and the output of the micro
// benchmarks,
//
//	micro.txt       go test -bench output, with command:, date: and the
//	                machine (--describe) written above it
//	e2e.json        go run ./bench/e2e --json
//	crossnode.json  go run ./bench/crossnode --json
//	cni.json        go run ./bench/cni --json
//	policy.json     go run ./bench/policy --json
//	slowpath.json   go run ./bench/slowpath --json
//
// and rewrites, for each it finds, the region of docs/benchmarks.md
// between `<!-- generated: NAME -->` and `<!-- end -->` (package
// bench/internal/region): the command, the machine and the date; the
// tables, each figure a median with the min–max of the rounds; the ratios
// to the kernel baselines measured in the same run with their targets met
// or missed; what limited each figure where the benchmark says; and PNG
// charts (package bench/internal/chart) written to docs/img and embedded.
// The region "summary" gathers every target of the run. Everything outside
// the regions is hand-written and kept as it is, so a run of one benchmark
// updates only its own region and charts.
//
// Run it from the repository:
//
//	go run ./bench/report --in DIR [--out docs] [--only e2e,crossnode] [--elapsed 42m]
//	go run ./bench/report --describe    # the machine, as config lines for micro.txt
//
// It runs as any user, in well under a second; it measures nothing.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/machine"
	"github.com/ringnet/ringnet/bench/internal/region"
)

// options are the command's settings; flags fill them.
type options struct {
	In      string        // the run directory
	Out     string        // where benchmarks.md is; charts go to Out/img
	Only    []string      // regions to write; empty: every one whose input is in In, and the summary
	Elapsed time.Duration // how long the whole run took, for the summary; 0: not said
}

func main() {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "", "the run `DIR` the benchmarks wrote their JSON (and micro.txt) into")
	out := fs.String("out", "docs", "the `DIR` of benchmarks.md; charts go to DIR/img")
	only := fs.String("only", "", "comma-separated regions to write, of "+strings.Join(regionNames(), ",")+" (default: every one whose input is in --in, and summary)")
	elapsed := fs.Duration("elapsed", 0, "how long the whole run took, for the summary")
	describe := fs.Bool("describe", false, "print the machine and the time as config lines (for the top of micro.txt) and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/report --in DIR [--out OUT] [--only LIST] [--elapsed D]\n\n"+
			"Writes the generated regions of OUT/benchmarks.md, and their charts in OUT/img, from a run directory.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *describe {
		writeDescription(os.Stdout, machine.Describe(), time.Now())
		return
	}
	o := options{In: *in, Out: *out, Elapsed: *elapsed}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(2)
	}
	if err := run(o, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

func (o options) check() error {
	if o.In == "" {
		return errors.New("--in: which run directory? (make bench writes bench-runs/<time>)")
	}
	for _, name := range o.Only {
		if !slices.Contains(regionNames(), name) {
			return fmt.Errorf("--only: unknown region %q (want some of %s)", name, strings.Join(regionNames(), ","))
		}
	}
	return nil
}

// writeDescription writes the machine and the time as config lines of the
// Go benchmark format, which gobench keeps and micro reads back.
func writeDescription(w io.Writer, m machine.Machine, now time.Time) {
	fmt.Fprintf(w, "date: %s\nkernel: %s\ncpu-model: %s\ncores: %d\ngo-version: %s\n",
		now.UTC().Format(dateFormat), m.Kernel, m.CPUModel, m.Cores, m.GoVersion)
}

// run writes the regions o asks for into Out/benchmarks.md and their
// charts into Out/img, logging what it did to logw. A region whose input
// is missing is an error only when --only named it.
func run(o options, logw io.Writer) error {
	docPath := filepath.Join(o.Out, "benchmarks.md")
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	imgDir := filepath.Join(o.Out, "img")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	var all []outcome // what each benchmark's region said, for the summary
	for _, src := range sources {
		want := len(o.Only) == 0 || slices.Contains(o.Only, src.name) || slices.Contains(o.Only, summaryName)
		if !want {
			continue
		}
		path := filepath.Join(o.In, src.file)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			if slices.Contains(o.Only, src.name) {
				return fmt.Errorf("%s: %s is missing: run `make %s` (or the whole `make bench`) first", src.name, path, src.target)
			}
			if len(o.Only) == 0 {
				fmt.Fprintf(logw, "report: %s: no %s; its region is left as it was\n", src.name, path)
			}
			continue
		}
		if err != nil {
			return err
		}
		sec := newSection(imgDir, "img")
		res, err := src.render(sec, data)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", src.name, path, err)
		}
		res.name, res.date = src.name, normDate(res.date)
		all = append(all, res)
		if len(o.Only) > 0 && !slices.Contains(o.Only, src.name) {
			continue // read only for the summary
		}
		if doc, err = replace(doc, src.name, sec.String(), logw); err != nil {
			return err
		}
		fmt.Fprintf(logw, "report: %s: region written from %s, charts %s\n", src.name, path, orNone(sec.charts))
	}
	if len(o.Only) == 0 || slices.Contains(o.Only, summaryName) {
		if len(all) == 0 {
			return fmt.Errorf("%s holds no benchmark output (%s)", o.In, strings.Join(inputFiles(), ", "))
		}
		if doc, err = replace(doc, summaryName, summary(all, o.In, o.Elapsed), logw); err != nil {
			return err
		}
		fmt.Fprintf(logw, "report: summary: region written from %d benchmarks\n", len(all))
	}
	return os.WriteFile(docPath, doc, 0o644)
}

// replace puts body into region name of doc; a region the document lacks
// is added at its end, and said.
func replace(doc []byte, name, body string, logw io.Writer) ([]byte, error) {
	out, found, err := region.Replace(doc, name, []byte(body))
	if err != nil {
		return nil, fmt.Errorf("benchmarks.md: %w", err)
	}
	if !found {
		fmt.Fprintf(logw, "report: benchmarks.md had no region %q: added at the end; move it where it belongs\n", name)
	}
	return out, nil
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
