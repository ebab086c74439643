package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/ringnet/ringnet/bench/internal/program"
)

// TestQuick runs the benchmark's own logic as `go run ./bench/e2e --quick
// --variants a,c` would, and checks that both variants carried traffic and
// that ringnetd's counters show the frames it forwarded. It asserts that
// the benchmark works, not how fast anything is.
func TestQuick(t *testing.T) {
	o, err := parseFlags([]string{"--quick", "--variants", "a,c"})
	if err != nil {
		t.Fatal(err)
	}
	rep := program.Smoke(t, 2*time.Minute, func(ctx context.Context, logw io.Writer) (*Report, error) {
		return bench(ctx, o, logw)
	})

	if len(rep.Variants) != 2 {
		t.Fatalf("report has %d variants, want 2 (a, c)", len(rep.Variants))
	}
	for _, v := range rep.Variants {
		if len(v.Runs) != 1 {
			t.Fatalf("variant %s: %d rounds, want 1", v.ID, len(v.Runs))
		}
		r := v.Runs[0]
		if r.Error != "" {
			t.Errorf("variant %s failed: %s", v.ID, r.Error)
			continue
		}
		if r.Throughput == nil || r.Throughput.RxPPS <= 0 {
			t.Errorf("variant %s: no receive rate: %+v", v.ID, r.Throughput)
		}
		if r.Latency == nil || r.Latency.P50us <= 0 {
			t.Errorf("variant %s: no latency: %+v", v.ID, r.Latency)
		}
		if v.ID == "c" {
			if fwd := r.Counters["reason.forwarded"]; fwd == 0 {
				t.Errorf("ringnetd counters show no forwarded frames: %v", r.Counters)
			} else if fwd < r.Throughput.Delivered*9/10 {
				t.Errorf("ringnetd forwarded %d frames, pod B received %d", fwd, r.Throughput.Delivered)
			}
		}
	}
	if rep.Failed() {
		t.Errorf("report says some rounds failed")
	}
}
