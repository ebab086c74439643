package program

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

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
