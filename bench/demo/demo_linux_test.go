package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestDemo runs the whole demo, so that `make demo` cannot rot: it fails
// if any step fails (a ping, iperf3, sockperf, the counters, the cleanup).
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the demo needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := run(ctx, false); err != nil {
		t.Fatal(err)
	}
}
