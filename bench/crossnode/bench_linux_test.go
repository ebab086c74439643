package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// TestBenchQuick runs the benchmark as `go run ./bench/crossnode --quick`
// would (one round, one-second windows) and checks that every variant
// measured every figure and proved its path, so that the benchmark cannot
// rot unnoticed. It asserts that the benchmark works, not how fast
// anything is.
func TestBenchQuick(t *testing.T) {
	o, err := parseFlags([]string{"--quick"})
	if err != nil {
		t.Fatal(err)
	}
	o.bins = bins
	rep := program.Smoke(t, 3*time.Minute, func(ctx context.Context, logw io.Writer) (*Report, error) {
		return bench(ctx, o, logw)
	})

	if len(rep.Variants) != len(variants) {
		t.Fatalf("report has %d variants, want %d", len(rep.Variants), len(variants))
	}
	for _, v := range rep.Variants {
		if len(v.Runs) != 1 {
			t.Errorf("(%s): %d rounds, want 1", v.ID, len(v.Runs))
			continue
		}
		r := v.Runs[0]
		for _, e := range r.Errors {
			t.Errorf("(%s) failed: %s", v.ID, e)
		}
		s := v.Summary
		want := map[string]*figure.Stat{"rx pps": s.RxPPS, "offered pps": s.OfferedPPS, "wire bytes": s.WireBytes,
			"p50": s.P50us, "p99": s.P99us, "p99.9": s.P999us, "TCP": s.TCPGbps}
		if vv, _ := variantByID(v.ID); vv.Service {
			// pps only; and the frames were translated on the way.
			want = map[string]*figure.Stat{"rx pps": s.RxPPS, "offered pps": s.OfferedPPS, "wire bytes": s.WireBytes}
		}
		for what, st := range want {
			if st == nil || st.Median <= 0 {
				t.Errorf("(%s) %s: no figure (%+v)", v.ID, what, st)
			}
		}
		if strings.HasPrefix(v.Name, "ringnet") {
			if r.LoadCounters["n1.reason.to_peer"] == 0 || r.LoadCounters["n2.reason.from_peer"] == 0 {
				t.Errorf("(%s) ringnetd's counters show no cross-node traffic: %v", v.ID, r.LoadCounters)
			}
			if len(s.RingnetdCPU) != 2 {
				t.Errorf("(%s) ringnetd CPU shares: %v, want n1 and n2", v.ID, s.RingnetdCPU)
			}
		}
	}
	if len(rep.Ratios) != 9 {
		t.Errorf("%d ratios, want 9: %+v", len(rep.Ratios), rep.Ratios)
	}
	md := filepath.Join(t.TempDir(), "crossnode.md")
	if err := rep.WriteMarkdown(md); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(md); !bytes.Contains(data, []byte("| (d) ringnet VXLAN |")) {
		t.Errorf("markdown lacks the ringnet VXLAN rows:\n%s", data)
	}
}
