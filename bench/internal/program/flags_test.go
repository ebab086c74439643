package program

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestLoadFlags(t *testing.T) {
	parse := func(args ...string) (*LoadFlags, *time.Duration, error) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		lf := AddLoadFlags(fs, 3, "rounds", 5*time.Second, "window", "round")
		tcp := fs.Duration("tcp-time", 4*time.Second, "")
		return lf, tcp, lf.Parse(args, map[string]string{"tcp-time": "1s"})
	}
	lf, tcp, err := parse("--quick", "--window", "2s")
	if err != nil {
		t.Fatal(err)
	}
	if *lf.Runs != 1 || *lf.Window != 2*time.Second || *lf.Warmup != 300*time.Millisecond || *lf.Quiet != 0 || *tcp != time.Second {
		t.Errorf("--quick --window 2s: runs %d window %v warmup %v quiet %v tcp %v; want 1, 2s (given), 300ms, 0, 1s",
			*lf.Runs, *lf.Window, *lf.Warmup, *lf.Quiet, *tcp)
	}
	if lf, _, err := parse(); err != nil || *lf.Runs != 3 || *lf.Quiet != time.Minute {
		t.Errorf("defaults: %v, runs %d, quiet %v", err, *lf.Runs, *lf.Quiet)
	}
	for _, bad := range [][]string{{"--runs", "0"}, {"--window", "500ms"}, {"--warmup", "-1s"}, {"extra"}} {
		if _, _, err := parse(bad...); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
