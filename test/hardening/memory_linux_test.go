package hardening_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/xsk"
)

var memoryPods = flag.Int("memory-pods", 100, "TestMemory: pods on the node (the issue's figure is 100)")

// memoryBoundMiB bounds ringnetd's RSS less its UMEMs with up to 100
// pods. It is not a tight fit (ringnetd holds about 67 MiB at 100 pods,
// 30 MiB of it with none, 24 MiB of that its own binary's pages: see
// docs/benchmarks.md) but a wall: a buffer of a MiB per pod goes through
// it, and so do a few UMEMs left mapped after their sockets closed.
const memoryBoundMiB = 100

// umemLen is the size of one socket's UMEM at ringnetd's defaults
// (--frames, --frame-size), which the test runs it with.
const umemLen = uint64(xsk.DefaultNumFrames) * xsk.DefaultFrameSize

// TestMemory measures ringnetd's memory on a node with -memory-pods pods
// (each added through libcni: an attached port with one AF_XDP socket per
// worker), the uplink and the slow path, as the issue asks: RSS with the
// UMEMs left out, and the Go heap.
//
// Each AF_XDP socket has a UMEM of its own, mapped anonymous, faulted in
// and pinned by the kernel while registered, so wholly
// resident: the UMEMs are the sockets (the kernel's count in the node's
// namespace, which must be ports × workers and one per worker prepared
// ahead for the next pod) times umemLen. /proc/PID/smaps
// must agree: its private anonymous mappings must have at least that many
// umemLen-sized pieces resident. (A UMEM is not a mapping of its own: the
// kernel merges the UMEMs it places next to each other into one mapping,
// and sometimes a UMEM with a mapping of the Go runtime beside it.)
//
// It fails when a pod is not attached, when smaps does not have the UMEMs
// resident, or when the RSS without them exceeds memoryBoundMiB.
func TestMemory(t *testing.T) {
	n := newNode(t)
	pods := max(2, *memoryPods)
	idle, idleXSKs := n.memory(), n.usage().XSKs
	began := time.Now()
	first := n.addPod(t, "mem-0")
	var last *pod
	for i := 1; i < pods; i++ {
		last = n.addPod(t, fmt.Sprintf("mem-%d", i))
	}
	t.Logf("%d pods added in %v", pods, time.Since(began).Round(time.Millisecond))
	pingOnce(t, first, last)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := n.api.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	attached := 0
	for _, e := range eps.Endpoints {
		if e.Attached {
			attached++
		}
	}
	// Each pod has an IPv4 and an IPv6 endpoint.
	if st.Allocated != pods || st.Ports != pods+1 || st.Uplink == nil || attached != 2*pods {
		t.Fatalf("ringnetd has %d allocations, %d ports (uplink %v), %d attached endpoints; want %d, %d with the uplink, %d",
			st.Allocated, st.Ports, st.Uplink != nil, attached, pods, pods+1, 2*pods)
	}
	u := n.quiet()
	m := n.memory()
	// One socket per port and worker, and, from the first pod port on, one
	// per worker prepared ahead for the next pod port (pipeline's
	// sockPool). Each has a UMEM of its own.
	spares := max(1, st.Workers)
	if want := st.Ports*max(1, st.Workers) + spares; u.XSKs != want {
		t.Fatalf("%d AF_XDP sockets in the node's namespace, want one per port and worker and %d prepared ahead: %d", u.XSKs, spares, want)
	}
	umems := u.XSKs
	t.Logf("ringnetd with %d pods, the uplink and the slow path: %d ports, %d workers, %d AF_XDP sockets (%d of them prepared ahead), %d threads, %d goroutines",
		pods, st.Ports, st.Workers, u.XSKs, spares, u.Threads, u.Goroutines)
	for _, x := range []struct {
		when string
		m    procMemory
		xsks int
	}{{"started, no pods", idle, idleXSKs}, {fmt.Sprintf("%d pods", pods), m, umems}} {
		t.Logf("%s: VmRSS %.1f MiB (RssAnon %.1f, RssFile %.1f); smaps_rollup Rss %.1f, Pss %.1f, Anonymous %.1f; UMEM %d × %.0f MiB; "+
			"RSS without UMEM %.1f MiB (anonymous %.1f); Go heap in use %.1f MiB, heap from the OS %.1f (released %.1f), stacks %.1f, all from the OS %.1f",
			x.when, mib(x.m.status["VmRSS"]), mib(x.m.status["RssAnon"]), mib(x.m.status["RssFile"]),
			mib(x.m.rollup["Rss"]), mib(x.m.rollup["Pss"]), mib(x.m.rollup["Anonymous"]), x.xsks, mib(umemLen),
			x.m.withoutUMEM("VmRSS", x.xsks), x.m.withoutUMEM("RssAnon", x.xsks),
			mib(x.m.goHeapInuse), mib(x.m.goHeapSys), mib(x.m.goHeapReleased), mib(x.m.goStack), mib(x.m.goSys))
	}
	rest := m.withoutUMEM("VmRSS", umems)
	t.Logf("per pod: %.2f MiB of RSS without UMEM, %.2f MiB of Go heap in use",
		(rest-idle.withoutUMEM("VmRSS", idleXSKs))/float64(pods), (mib(m.goHeapInuse)-mib(idle.goHeapInuse))/float64(pods))

	if m.umems < umems {
		t.Errorf("smaps shows %d UMEMs' worth of anonymous memory resident, want at least one per AF_XDP socket: %d; the mappings of at least %d bytes:\n%s",
			m.umems, umems, umemLen, strings.Join(m.large, "\n"))
	}
	if pods <= 100 && rest > memoryBoundMiB {
		t.Errorf("ringnetd's RSS without UMEM is %.1f MiB with %d pods, over the bound of %d MiB", rest, pods, memoryBoundMiB)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// procMemory is ringnetd's memory, in bytes: the kB lines of
// /proc/PID/status and /proc/PID/smaps_rollup by name, its Go runtime's
// figures from its metrics, and what its smaps holds of UMEMs.
type procMemory struct {
	status, rollup map[string]uint64
	goHeapInuse    uint64   // go_memstats_heap_inuse_bytes
	goHeapSys      uint64   // go_memstats_heap_sys_bytes
	goHeapReleased uint64   // go_memstats_heap_released_bytes
	goStack        uint64   // go_memstats_stack_inuse_bytes
	goSys          uint64   // go_memstats_sys_bytes
	umems          int      // umemLen-sized pieces resident in private anonymous mappings
	large          []string // the mappings of umemLen or more, for a message
}

// withoutUMEM is the status line name (VmRSS, RssAnon) less the UMEMs of
// xsks sockets, in MiB.
func (m procMemory) withoutUMEM(name string, xsks int) float64 {
	return mib(m.status[name]) - float64(xsks)*mib(umemLen)
}

// memory reads ringnetd's memory now.
func (n *node) memory() procMemory {
	n.tb.Helper()
	pid := n.pid()
	m := procMemory{
		status:         kBLines(n.tb, fmt.Sprintf("/proc/%d/status", pid)),
		rollup:         kBLines(n.tb, fmt.Sprintf("/proc/%d/smaps_rollup", pid)),
		goHeapInuse:    uint64(n.metric("go_memstats_heap_inuse_bytes")),
		goHeapSys:      uint64(n.metric("go_memstats_heap_sys_bytes")),
		goHeapReleased: uint64(n.metric("go_memstats_heap_released_bytes")),
		goStack:        uint64(n.metric("go_memstats_stack_inuse_bytes")),
		goSys:          uint64(n.metric("go_memstats_sys_bytes")),
	}
	for _, v := range smaps(n.tb, pid) {
		if v.size < umemLen {
			continue
		}
		m.large = append(m.large, fmt.Sprintf("%s Size %d kB, Rss %d kB", v.header, v.size>>10, v.rss>>10))
		if fl := strings.Fields(v.header); len(fl) == 5 && fl[1] == "rw-p" && fl[4] == "0" {
			m.umems += int(v.rss / umemLen)
		}
	}
	return m
}

// kBLines reads the "Name: N kB" lines of a /proc file.
func kBLines(tb testing.TB, path string) map[string]uint64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			if k, err := strconv.ParseUint(f[0], 10, 64); err == nil {
				out[name] = k << 10
			}
		}
	}
	return out
}

// vma is one mapping of /proc/PID/smaps.
type vma struct {
	header    string // its maps line: range, permissions, offset, device, inode, path
	size, rss uint64
}

// smaps reads the mappings of process pid.
func smaps(tb testing.TB, pid int) []vma {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var all []vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		switch {
		case len(fl) >= 5 && !strings.HasSuffix(fl[0], ":"): // a maps line
			all = append(all, vma{header: sc.Text()})
		case len(all) > 0 && len(fl) == 3 && fl[2] == "kB":
			k, _ := strconv.ParseUint(fl[1], 10, 64)
			switch fl[0] {
			case "Size:":
				all[len(all)-1].size = k << 10
			case "Rss:":
				all[len(all)-1].rss = k << 10
			}
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return all
}
