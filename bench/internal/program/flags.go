package program

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/machine"
)

// Variant names one of a program's variants, for its usage text, its
// --variants flag and its reports.
type Variant struct {
	ID   string `json:"id"`
	Name string `json:"name"`        // short, for tables
	Desc string `json:"description"` // one line
}

// NewFlagSet returns the flag set of the program in package pkg (e.g.
// "./bench/e2e"), whose usage says how to run it, what it measures and
// for which variants.
func NewFlagSet(pkg, measures string, vs []Variant) *flag.FlagSet {
	fs := flag.NewFlagSet(pkg[strings.LastIndexByte(pkg, '/')+1:], flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: go run %s [flags]   (as root, from the ringnet repository)\n\n%s for:\n", pkg, measures)
		for _, v := range vs {
			fmt.Fprintf(w, "  (%s) %s: %s\n", v.ID, v.Name, v.Desc)
		}
		fmt.Fprintf(w, "\nflags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// ParseVariants reads a --variants list: IDs of vs separated by commas,
// kept in the order given, each once.
func ParseVariants(list string, vs []Variant) ([]string, error) {
	var ids, known []string
	for _, v := range vs {
		known = append(known, v.ID)
	}
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		if !slices.Contains(known, id) {
			return nil, fmt.Errorf("--variants: unknown variant %q (want a subset of %s)", id, strings.Join(known, ","))
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("--variants: none given")
	}
	return ids, nil
}

// Command is how the program in package pkg was invoked, for the reports.
func Command(pkg string, args []string) string {
	return strings.Join(append([]string{"go", "run", pkg}, args...), " ")
}

// Meta is what every report says about its run.
type Meta struct {
	Command string `json:"command"` // how the run was invoked
	Date    string `json:"date"`
	machine.Machine
	Runs int `json:"runs"` // rounds per variant
}

// NewMeta describes a run of command with runs rounds, now, on this
// machine.
func NewMeta(command string, runs int) Meta {
	return Meta{Command: command, Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Machine: machine.Describe(), Runs: runs}
}

// Ratio compares two medians measured in the same run, against a target
// or for information.
type Ratio struct {
	What   string  `json:"what"`
	Value  float64 `json:"value"`
	Target string  `json:"target,omitempty"` // e.g. "≥ 1.5"; empty: for information
	Met    bool    `json:"met"`
}

// Verdict says how the ratio stands, in markdown: "for information",
// "target ≥ 1.5: met" or "target ≥ 1.5: **missed**".
func (x Ratio) Verdict() string {
	switch {
	case x.Target == "":
		return "for information"
	case x.Met:
		return "target " + x.Target + ": met"
	default:
		return "target " + x.Target + ": **missed**"
	}
}

// Tally counts a variant's rounds.
type Tally struct {
	OKRuns     int `json:"ok_runs"`
	FailedRuns int `json:"failed_runs"`
}

// Failed reports whether a round failed, or none ran.
func (t Tally) Failed() bool { return t.FailedRuns > 0 || t.OKRuns == 0 }

// Parse parses args, which must all be flags.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// Defaults sets the flags the command line did not give to values, e.g.
// a smoke run's {"runs": "1", "window": "1s"} for --quick.
func Defaults(fs *flag.FlagSet, values map[string]string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range values {
		if !given[name] {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("--%s=%s: %w", name, v, err)
			}
		}
	}
	return nil
}

// LoadFlags are the flags of a benchmark that measures loads in rounds:
// --runs, --window, --warmup, --quiet-wait, --json, --markdown and --quick.
// Add them with AddLoadFlags, then read them after Parse.
type LoadFlags struct {
	Runs           *int
	Window, Warmup *time.Duration
	Quiet          *time.Duration // how long to wait for a quiet machine (cpustat.Watch)
	JSON, Markdown *string

	fs    *flag.FlagSet
	quick *bool
}

// AddLoadFlags adds the load flags to fs: runs rounds by default, windows
// of window after a warm-up of a second, a minute's wait for quiet before
// each of what (e.g. "round"); --quick sets those not given to one round,
// one-second windows, 0.3 s of warm-up and no wait.
func AddLoadFlags(fs *flag.FlagSet, runs int, runsUsage string, window time.Duration, windowUsage, what string) *LoadFlags {
	return &LoadFlags{fs: fs,
		Runs:   fs.Int("runs", runs, runsUsage),
		Window: fs.Duration("window", window, windowUsage),
		Warmup: fs.Duration("warmup", time.Second, "traffic before the window starts"),
		Quiet: fs.Duration("quiet-wait", time.Minute, fmt.Sprintf("before each %s, wait up to this long for the machine to be quiet (at most %.0f%% busy; 0: do not wait)",
			what, cpustat.QuietBusy)),
		JSON:     fs.String("json", "", "write every raw and summarised figure as JSON to `FILE`"),
		Markdown: fs.String("markdown", "", "write a docs/benchmarks.md section to `FILE`"),
		quick:    fs.Bool("quick", false, "smoke run: 1 round, 1s windows, 0.3s warm-up, no wait for quiet (unless given explicitly)"),
	}
}

// Parse parses args as Parse does, applies --quick (more holds further
// flags' quick values, e.g. {"tcp-time": "1s"}) and checks the load
// flags.
func (l *LoadFlags) Parse(args []string, more map[string]string) error {
	if err := Parse(l.fs, args); err != nil {
		return err
	}
	if *l.quick {
		quick := map[string]string{"runs": "1", "window": "1s", "warmup": "300ms", "quiet-wait": "0"}
		maps.Copy(quick, more)
		if err := Defaults(l.fs, quick); err != nil {
			return err
		}
	}
	switch {
	case *l.Runs < 1:
		return errors.New("--runs must be at least 1")
	case *l.Window < time.Second:
		return errors.New("--window must be at least 1s")
	case *l.Warmup < 0 || *l.Quiet < 0:
		return errors.New("--warmup and --quiet-wait must not be negative")
	}
	return nil
}
