package xsk

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// mapped reports whether /proc/self/maps has a mapping that starts at m.
func mapped(t *testing.T, m []byte) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&m[0])))
	for _, l := range strings.Split(string(maps), "\n") {
		if strings.HasPrefix(l, start) {
			return true
		}
	}
	return false
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
	if len(m) != 32*2048 || !mapped(t, m) {
		t.Fatalf("MapUMEM: %d bytes (mapped: %v), want %d", len(m), mapped(t, m), 32*2048)
	}
	_, err = OpenUMEM("lo", 0, cfg, m)
	if err == nil || !strings.Contains(err.Error(), "want 131072") {
		t.Fatalf("OpenUMEM with a UMEM of the wrong size: %v", err)
	}
	if mapped(t, m) {
		t.Error("OpenUMEM refused the UMEM but left it mapped")
	}
	if _, err := MapUMEM(Config{NumFrames: 64, FrameSize: 1000}); err == nil {
		t.Error("MapUMEM with FrameSize 1000 succeeded")
	}
}
