package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the benchmark's own logic as `go run ./bench/cni --pods 3
// --runs 1` would and checks that every plugin was measured for every pod
// and that the reports are written. It asserts that the benchmark works,
// not how fast anything is.
func TestQuick(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, XDP, AF_XDP)")
	}
	o, err := parseFlags([]string{"--pods", "3", "--runs", "1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	rep, err := bench(ctx, o, &log)
	t.Logf("log:\n%s", log.String())
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	if len(rep.Plugins) != 3 {
		t.Fatalf("report has %d plugins, want 3", len(rep.Plugins))
	}
	if len(rep.Phases) != len(phaseOrder) {
		t.Errorf("report has %d phases, want %d", len(rep.Phases), len(phaseOrder))
	}
	for _, p := range rep.Phases {
		if p.Summary.N != 3 {
			t.Errorf("phase %q: %d samples, want 3", p.Name, p.Summary.N)
		}
	}
	// The plugin timed each counted ADD itself; its steps fit in the wall
	// time cnitool measured.
	if len(rep.PluginSteps) != len(stepOrder) {
		t.Errorf("report has %d plugin steps, want %d", len(rep.PluginSteps), len(stepOrder))
	}
	for _, p := range rep.PluginSteps {
		if p.Summary.N != 3 || p.Summary.P50 <= 0 && p.Name != stepStart {
			t.Errorf("plugin step %q: %+v, want 3 samples above 0", p.Name, p.Summary)
		}
		if p.Name == stepTotal && len(rep.Plugins) > 0 && p.Summary.Max > rep.Plugins[0].Add.Max {
			t.Errorf("plugin's own total %.1f ms above the slowest cnitool ADD %.1f ms", p.Summary.Max, rep.Plugins[0].Add.Max)
		}
	}
	for _, p := range rep.Plugins {
		if p.Add.N != 3 || p.Del.N != 3 || p.Add.P50 <= 0 || p.Del.P99 < p.Del.P50 {
			t.Errorf("%s: ADD %+v, DEL %+v; want 3 samples each", p.ID, p.Add, p.Del)
		}
	}
	var table, md, js bytes.Buffer
	rep.WriteTable(&table)
	rep.WriteMarkdown(&md)
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", table.String())
	for _, want := range []string{"ringnet + ringnetd", "Debian bridge + host-local", "target ringnet ADD p99"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

func TestSummarize(t *testing.T) {
	var s []float64
	for i := 100; i >= 1; i-- {
		s = append(s, float64(i))
	}
	got := summarize(s)
	want := Summary{N: 100, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("summarize(1..100) = %+v, want %+v", got, want)
	}
	if got := summarize([]float64{7}); got.P50 != 7 || got.P99 != 7 {
		t.Errorf("one sample: %+v", got)
	}
}
