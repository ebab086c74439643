package cpustat

import (
	"context"
	"fmt"
	"io"
	"time"
)

// QuietBusy is the share of the machine (all CPUs, percent) other work may
// keep busy while a round starts; quietSample is what it is measured over.
const (
	QuietBusy   = 10.0
	quietSample = 500 * time.Millisecond
)

// OtherWorkMax is how much CPU other work may take during a round, in
// percent of one core, before the round counts as disturbed.
const OtherWorkMax = 10.0

// Watch keeps other people's work out of a benchmark's figures on a
// shared machine, where their builds and tests take the cores the
// benchmark measures on: before each round it waits until the machine is
// quiet, and afterwards it says whether other work took the cores
// meanwhile. One goroutine, the benchmark's, uses it.
type Watch struct {
	Wait time.Duration // how long to wait for a quiet machine before a round; 0: do not wait
	Log  io.Writer     // a line when it waited long, or could not read the machine

	ours map[uint64]bool // the benchmark's network namespaces, by inode
}

// Noise is what a Watch saw around one round.
type Noise struct {
	// BackgroundBusy is how busy the machine was (all CPUs, percent) just
	// before the round, with the benchmark idle: other people's work.
	BackgroundBusy float64 `json:"background_busy_percent"`
	// OtherWork is the CPU time other work (processes outside the
	// benchmark's namespaces) took during the round, in percent of one
	// core.
	OtherWork float64 `json:"other_work_cpu_percent"`
	// Disturbed says the machine was still busier than QuietBusy when the
	// wait for quiet ran out, or other work took more than OtherWorkMax
	// during the round: summaries leave the round out.
	Disturbed bool `json:"disturbed"`
}

// Own counts what runs in the named network namespaces as the
// benchmark's own work.
func (w *Watch) Own(netns ...string) error {
	if w.ours == nil {
		w.ours = map[uint64]bool{}
	}
	for _, ns := range netns {
		ino, err := NetnsInode(ns)
		if err != nil {
			return err
		}
		w.ours[ino] = true
	}
	return nil
}

// Round runs fn once the machine is quiet, and says how disturbed it was.
func (w *Watch) Round(ctx context.Context, fn func()) Noise {
	background, err := w.quiet(ctx)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(w.Log, "measure the machine's load: %v\n", err)
	}
	start, others0 := time.Now(), w.others()
	fn()
	n := Noise{BackgroundBusy: background}
	if others1 := w.others(); others0 >= 0 && others1 >= others0 {
		n.OtherWork = float64(others1-others0) / time.Since(start).Seconds() / 10 // ms per s to % of a core
	}
	n.Disturbed = background > QuietBusy || n.OtherWork > OtherWorkMax
	return n
}

// others is the CPU time other work has used so far (Others), in
// milliseconds, or -1 if it cannot be read.
func (w *Watch) others() int64 {
	ms, err := Others(w.ours)
	if err != nil {
		fmt.Fprintf(w.Log, "  read other work's CPU time: %v\n", err)
		return -1
	}
	return int64(ms)
}

// quiet waits, up to Wait, until the machine is quiet, and returns the
// share busy when it stopped waiting.
func (w *Watch) quiet(ctx context.Context) (float64, error) {
	start := time.Now()
	for {
		busy, err := Busy(ctx, quietSample)
		if err != nil || busy <= QuietBusy || time.Since(start) >= w.Wait {
			if waited := time.Since(start) - quietSample; err == nil && waited > time.Second {
				fmt.Fprintf(w.Log, "  waited %.0fs for other work to stop (machine %.0f%% busy now)\n", waited.Seconds(), busy)
			}
			return busy, err
		}
	}
}

// Kept reports, for each round, whether summaries keep its figures: all
// rounds that were not disturbed, or every round when all were.
func Kept(rounds []Noise) []bool {
	keep := make([]bool, len(rounds))
	all := true
	for i, n := range rounds {
		keep[i] = !n.Disturbed
		all = all && n.Disturbed
	}
	if all {
		for i := range keep {
			keep[i] = true
		}
	}
	return keep
}
