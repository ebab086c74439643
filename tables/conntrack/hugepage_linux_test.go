package conntrack

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// vmFlags returns the VmFlags of the mapping of /proc/self/smaps that holds
// addr, and its AnonHugePages line.
func vmFlags(t *testing.T, addr uintptr) (flags, huge string) {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	in := false
	for _, l := range strings.Split(string(smaps), "\n") {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(l, "%x-%x ", &lo, &hi); err == nil {
			in = lo <= addr && addr < hi
			continue
		}
		if !in {
			continue
		}
		if v, ok := strings.CutPrefix(l, "AnonHugePages:"); ok {
			huge = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "VmFlags:"); ok {
			return v, huge
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return "", ""
}

// A table larger than a few huge pages asks for them for its buckets and
// records. Whether the kernel had huge pages to give is logged, not held:
// it depends on the machine's free memory.
func TestHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err != nil {
		t.Skipf("kernel without transparent huge pages: %v", err)
	}
	tab, err := New(Config{Capacity: 1 << 17}) // 16 MiB of records, 4 MiB of buckets
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]uintptr{
		"records": uintptr(unsafe.Pointer(&tab.recs[len(tab.recs)/2])),
		"buckets": uintptr(unsafe.Pointer(&tab.buckets[len(tab.buckets)/2])),
	} {
		flags, huge := vmFlags(t, addr)
		if !strings.Contains(" "+flags+" ", " hg ") {
			t.Errorf("%s: mapping flags %q lack hg (MADV_HUGEPAGE)", name, flags)
		}
		t.Logf("%s: AnonHugePages %s", name, huge)
	}
	runtime.KeepAlive(tab)
}
