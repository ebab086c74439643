package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the benchmark once with short windows, as `go run
// ./bench/slowpath --runs 1 --window 1s --flood-limits 0` would, and checks
// that every variant measured something and the report has both tables. It
// asserts that the benchmark works, not how fast anything is.
func TestQuick(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, XDP, AF_XDP, TAP)")
	}
	o, err := parseFlags([]string{"--runs", "1", "--window", "1s", "--flood-limits", "0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	rep, err := bench(ctx, o, &log)
	t.Logf("log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	md := rep.markdown()
	t.Logf("report:\n%s", md)
	for _, v := range hostVariants {
		rs := rep.Host[v.ID]
		if len(rs) != 1 || rs[0].Error != "" || rs[0].ToPodGbps <= 0 || rs[0].ToHostGbps <= 0 || rs[0].Latency.P50 <= 0 {
			t.Errorf("host variant %s: %+v", v.ID, rs)
		}
	}
	for _, v := range o.Floods {
		rs := rep.Flood[v.ID]
		if len(rs) != 1 || rs[0].Error != "" || rs[0].PodToPodGbps <= 0 || (v.flood && rs[0].OfferedPPS <= 0) {
			t.Errorf("flood variant %s: %+v", v.ID, rs)
		}
	}
	if r := rep.Flood["0"]; len(r) == 1 && (r[0].ToHostPPS != 0 || r[0].OverLimitPPS <= 0) {
		t.Errorf("to_host_new=0 let frames through or counted none over the limit: %+v", r[0])
	}
	if !strings.Contains(md, "| (t) ringnetd slow path (TAP) |") || !strings.Contains(md, "vs no flood") {
		t.Errorf("report lacks a table:\n%s", md)
	}
}
