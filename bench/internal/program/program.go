// Package program is the shell the benchmark programs share around their
// own measuring: what a bad flag does, a context that SIGINT and SIGTERM
// cancel, and the end of a run — the report printed, written as JSON and
// markdown when asked, and the exit code: 0 when every round measured, 1
// on an error or a failed round, 2 on bad flags, 130 when interrupted. The
// benchmark itself removes what it made before it returns, in each case.
//
// Smoke runs a benchmark's quick mode from its test the same way. Nothing
// here imports package testing: the programs link it.
package program

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
)

// Report is what a benchmark returns: its rounds and summaries.
type Report interface {
	WriteTable(w io.Writer)          // the human-readable summary
	WriteMarkdown(path string) error // a section for docs/benchmarks.md
	Failed() bool                    // whether a round failed
}

// Flags ends the program if parsing its flags failed: with 0 after -h,
// else with 2 and the error.
func Flags(name string, err error) {
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(2)
}

// Context returns a context that SIGINT and SIGTERM cancel.
func Context() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// Finish ends the program after the benchmark returned rep (nil if it
// measured nothing) and err: it prints the report, writes it to jsonPath
// and mdPath unless they are empty, and exits with the program's code.
func Finish[R any, P interface {
	*R
	Report
}](ctx context.Context, name string, rep P, err error, jsonPath, mdPath string) {
	if rep != nil {
		rep.WriteTable(os.Stdout)
		if jsonPath != "" {
			if werr := WriteJSON(jsonPath, rep); werr != nil {
				fmt.Fprintf(os.Stderr, "%s: write json: %v\n", name, werr)
				err = errors.Join(err, werr)
			}
		}
		if mdPath != "" {
			if werr := rep.WriteMarkdown(mdPath); werr != nil {
				fmt.Fprintf(os.Stderr, "%s: write markdown: %v\n", name, werr)
				err = errors.Join(err, werr)
			}
		}
	}
	switch {
	case errors.Is(err, child.ErrStopped) || ctx.Err() != nil:
		fmt.Fprintf(os.Stderr, "%s: interrupted; everything it made has been removed\n", name)
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	case rep == nil || rep.Failed():
		fmt.Fprintf(os.Stderr, "%s: some rounds failed (see FAILED lines above)\n", name)
		os.Exit(1)
	}
	os.Exit(0)
}

// WriteJSON writes v as indented JSON, for --json.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// TB is the part of testing.TB that Smoke uses.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Smoke runs a benchmark from its test: it skips unless root, runs bench
// within timeout, logs the benchmark's progress and its table, and ends
// the test if bench returned an error. The caller checks the report.
func Smoke[R any, P interface {
	*R
	Report
}](tb TB, timeout time.Duration, bench func(ctx context.Context, logw io.Writer) (P, error)) P {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces, XDP, AF_XDP)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var log bytes.Buffer
	rep, err := bench(ctx, &log)
	tb.Logf("log:\n%s", log.String())
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	tb.Logf("%s", table.String())
	return rep
}
