package xsk

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// mapped reports whether /proc/self/maps has one mapping that holds all of
// m, and whether any mapping overlaps it. The kernel merges an anonymous
// mapping with a neighbour of the same kind (the Go heap, the race
// detector's), so m need not start a mapping of its own.
func mapped(t *testing.T, m []byte) (whole, some bool) {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	lo := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(m))))
	hi := lo + uint64(len(m))
	for _, l := range strings.Split(string(maps), "\n") {
		var start, end uint64
		if _, err := fmt.Sscanf(l, "%x-%x", &start, &end); err != nil {
			continue
		}
		if start < hi && lo < end {
			some = true
			whole = whole || (start <= lo && hi <= end)
		}
	}
	return whole, some
}

// OpenUMEM takes a UMEM of exactly NumFrames*FrameSize bytes and owns it
// either way: a wrong size is refused, and the UMEM unmapped.
func TestOpenUMEMSize(t *testing.T) {
	cfg := Config{NumFrames: 64, FrameSize: 2048}
	small := cfg
	small.NumFrames = 32
	m, err := MapUMEM(small)
	if err != nil {
		t.Fatal(err)
	}
	if whole, _ := mapped(t, m); len(m) != 32*2048 || !whole {
		t.Fatalf("MapUMEM: %d bytes (mapped: %v), want %d", len(m), whole, 32*2048)
	}
	_, err = OpenUMEM("lo", 0, cfg, m)
	if err == nil || !strings.Contains(err.Error(), "want 131072") {
		t.Fatalf("OpenUMEM with a UMEM of the wrong size: %v", err)
	}
	// A mapping made since by another thread could land in the hole; the
	// window is microseconds and nothing in this test maps.
	if _, some := mapped(t, m); some {
		t.Error("OpenUMEM refused the UMEM but left it mapped")
	}
	if _, err := MapUMEM(Config{NumFrames: 64, FrameSize: 1000}); err == nil {
		t.Error("MapUMEM with FrameSize 1000 succeeded")
	}
}
