package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/ringnode/ringnodetest"
)

var bins ringnode.Binaries

func TestMain(m *testing.M) { ringnodetest.Main(m, &bins) }

// TestBenchQuick runs the benchmark as `go run ./bench/policy --quick`
// would (one round, one-second windows) and checks that every variant
// measured both loads at every rule count, and that the counters prove
// the way each went: for ringnet, nothing denied to the allowed sender,
// the load through to_peer and from_peer, a verdict for every packet of
// new flows and none for one flow; for iptables, the ESTABLISHED rule
// taking one flow and the last rule new flows. It asserts that the
// benchmark works, not how fast anything is.
func TestBenchQuick(t *testing.T) {
	o, err := parseFlags([]string{"--quick"})
	if err != nil {
		t.Fatal(err)
	}
	o.bins = bins
	rep := program.Smoke(t, 3*time.Minute, func(ctx context.Context, logw io.Writer) (*Report, error) {
		return bench(ctx, o, logw)
	})

	if want := len(variants) * len(o.Rules); len(rep.Points) != want {
		t.Fatalf("report has %d points, want %d (every variant at every rule count)", len(rep.Points), want)
	}
	for _, p := range rep.Points {
		v, _ := variantByID(p.Variant)
		if len(p.Runs) != 1 {
			t.Errorf("(%s) %d rules: %d rounds, want 1", p.Variant, p.Rules, len(p.Runs))
			continue
		}
		run := p.Runs[0]
		for _, e := range run.Errors {
			t.Errorf("(%s) %d rules failed: %s", p.Variant, p.Rules, e)
		}
		if len(run.Loads) != len(loads) {
			t.Errorf("(%s) %d rules: %d loads measured, want %d", p.Variant, p.Rules, len(run.Loads), len(loads))
			continue
		}
		for i, lr := range run.Loads {
			l := loads[i]
			for _, e := range lr.Errors {
				t.Errorf("(%s) %d rules, %s failed: %s", p.Variant, p.Rules, l.ID, e)
			}
			if s := p.Loads[l.ID]; s == nil || s.RxPPS == nil || s.RxPPS.Median <= 0 {
				t.Errorf("(%s) %d rules, %s: no rx pps", p.Variant, p.Rules, l.ID)
				continue
			}
			c, delivered := lr.Counters, lr.Throughput.Delivered
			most := func(what, key string) {
				if float64(c[key]) < testbed.MinShare*float64(delivered) {
					t.Errorf("(%s) %d rules, %s: %s counted %d of %d delivered frames", p.Variant, p.Rules, l.ID, what, c[key], delivered)
				}
			}
			none := func(key string) {
				if c[key] != 0 {
					t.Errorf("(%s) %d rules, %s: %s is %d, want 0", p.Variant, p.Rules, l.ID, key, c[key])
				}
			}
			if v.Iptables == "" {
				most("ringnetd on n1", "n1.reason.to_peer")
				most("ringnetd on n2", "n2.reason.from_peer")
				none("n1.reason.policy_denied")
				none("n2.reason.policy_denied")
				checked := float64(lr.Checked) / float64(delivered)
				if l.NewFlows && checked < testbed.MinShare || !l.NewFlows && checked > 0.01 {
					t.Errorf("(%s) %d rules, %s: %.2f connections tracked per delivered frame", p.Variant, p.Rules, l.ID, checked)
				}
				continue
			}
			row := rowEstablished
			if l.NewFlows {
				row = rowAllow
			}
			most("n2's FORWARD row "+row, "n2.ipt."+row)
			none("n2.ipt." + rowOthers)
			none("n2.ipt." + rowDrop)
		}
	}
	// Each load: every variant's most rules against its fewest, and
	// ringnet against both iptables.
	if want := len(loads) * (len(variants) + len(variants) - 1); len(rep.Ratios) != want {
		t.Errorf("%d ratios, want %d: %+v", len(rep.Ratios), want, rep.Ratios)
	}
	md := filepath.Join(t.TempDir(), "policy.md")
	if err := rep.WriteMarkdown(md); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(md); !bytes.Contains(data, []byte("| 10\u202f000 |")) {
		t.Errorf("markdown lacks the 10 000 rules row:\n%s", data)
	}
}
