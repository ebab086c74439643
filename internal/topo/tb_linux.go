package topo

import "os"

// TB is the part of testing.TB that NewT uses; *testing.T and *testing.B
// have it. Taking it, not testing.TB, keeps package testing out of the
// demo's binary.
type TB interface {
	Helper()
	Cleanup(func())
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// NewT is New for tests and benchmarks: it skips unless root, sweeps what
// crashed runs with this prefix left, and closes the topology in tb's
// cleanup, also when the test fails, reporting a failed Close as an error.
func NewT(tb TB, prefix string) *Topology {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("topo: needs root (network namespaces, veths, bridges)")
	}
	if err := Sweep(prefix); err != nil {
		tb.Fatalf("topo: sweep: %v", err)
	}
	t, err := New(prefix)
	if err != nil {
		tb.Fatalf("topo: %v", err)
	}
	tb.Cleanup(func() {
		if err := t.Close(); err != nil {
			tb.Errorf("topo: close %s: %v", t.ID, err)
		}
	})
	return t
}
