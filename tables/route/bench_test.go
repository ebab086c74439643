package route

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"

	"github.com/gaissmai/bart"
)

// The benchmarks look up a precomputed array of addresses, most inside a
// random route (at a random host address), the rest anywhere (mostly
// misses, for the 100k sets some hits). The same routes and addresses go
// to bart, the baseline: bart.Table, its general table, and bart.Fast,
// the one it recommends for a FIB.

const nAddrs = 1 << 16

type benchSet struct {
	routes []netip.Prefix
	hops   []NextHop
	addrs  []netip.Addr // for Lookup(netip.Addr) and bart
	a4     [][4]byte    // the IPv4 addresses again, for Lookup4
}

// v4Len draws a realistic IPv4 length: mostly /24, some /16-/23, some
// host routes, a few shorter and longer.
func v4Len(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 65:
		return 24
	case x < 85:
		return 16 + r.IntN(8)
	case x < 93:
		return 32
	case x < 98:
		return 25 + r.IntN(7)
	default:
		return 8 + r.IntN(8)
	}
}

// v6Len: mostly /48, some /32-/47 and /49-/64, a few longer and /128s.
func v6Len(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 60:
		return 48
	case x < 75:
		return 32 + r.IntN(16)
	case x < 90:
		return 49 + r.IntN(16)
	case x < 95:
		return 65 + r.IntN(63)
	default:
		return 128
	}
}

func randHop(r *rand.Rand) NextHop {
	switch x := r.IntN(100); {
	case x < 90:
		return NextHop{Kind: RemoteNode, Node: uint16(r.IntN(2000)), Tunnel: Tunnel(r.IntN(3))}
	case x < 95:
		return NextHop{Kind: LocalPort, Port: ViaEndpoint}
	default:
		return NextHop{Kind: SlowPath}
	}
}

func makeSet(n int, v6 bool, seed uint64) *benchSet {
	r := rand.New(rand.NewPCG(seed, 99))
	s := &benchSet{}
	seen := map[netip.Prefix]bool{}
	for len(s.routes) < n {
		var p netip.Prefix
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			b[0] = 0x20 | b[0]&0x1f // 2000::/3, global unicast
			p, _ = netip.AddrFrom16(b).Prefix(v6Len(r))
		} else {
			var b [4]byte
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			p, _ = netip.AddrFrom4(b).Prefix(v4Len(r))
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		s.routes = append(s.routes, p)
		s.hops = append(s.hops, randHop(r))
	}
	for range nAddrs {
		var a netip.Addr
		if r.IntN(5) != 0 {
			a = randIn(r, s.routes[r.IntN(n)])
		} else if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			b[0] = 0x20 | b[0]&0x1f
			a = netip.AddrFrom16(b)
		} else {
			a = netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		}
		s.addrs = append(s.addrs, a)
		if !v6 {
			s.a4 = append(s.a4, a.As4())
		}
	}
	return s
}

var sets = map[string]func() *benchSet{
	"v4/10":   sync.OnceValue(func() *benchSet { return makeSet(10, false, 1) }),
	"v4/100k": sync.OnceValue(func() *benchSet { return makeSet(100_000, false, 2) }),
	"v6/10":   sync.OnceValue(func() *benchSet { return makeSet(10, true, 3) }),
	"v6/100k": sync.OnceValue(func() *benchSet { return makeSet(100_000, true, 4) }),
}

var sizes = []string{"10", "100k"}

// heapDelta returns the bytes that stay allocated after make runs.
func heapDelta(make func() any) (any, float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := make()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return x, float64(after.HeapAlloc) - float64(before.HeapAlloc)
}

// The builders return the table and its memory per route, which the
// benchmark reports after its loop (b.Loop clears metrics reported before).

func (s *benchSet) ours(b *testing.B) (*Table, float64) {
	var bl Builder
	for i, p := range s.routes {
		if err := bl.Insert(p, s.hops[i]); err != nil {
			b.Fatal(err)
		}
	}
	x, bytes := heapDelta(func() any { return bl.Build(1) })
	runtime.KeepAlive(&bl) // or heapDelta counts the builder's map freed
	return x.(*Table), bytes / float64(len(s.routes))
}

func (s *benchSet) bart() (*bart.Table[NextHop], float64) {
	x, bytes := heapDelta(func() any {
		t := new(bart.Table[NextHop])
		for i, p := range s.routes {
			t.Insert(p, s.hops[i])
		}
		return t
	})
	return x.(*bart.Table[NextHop]), bytes / float64(len(s.routes))
}

func (s *benchSet) bartFast() (*bart.Fast[NextHop], float64) {
	x, bytes := heapDelta(func() any {
		t := new(bart.Fast[NextHop])
		for i, p := range s.routes {
			t.Insert(p, s.hops[i])
		}
		return t
	})
	return x.(*bart.Fast[NextHop]), bytes / float64(len(s.routes))
}

// report adds the hit ratio and the memory per route to the results.
func report(b *testing.B, hits, ops int, perRoute float64) {
	b.ReportMetric(float64(hits)/float64(ops), "hits/op")
	b.ReportMetric(perRoute, "B/route")
}

func BenchmarkRouteLookupV4(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v4/"+size]()
			t, perRoute := s.ours(b)
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup4(s.a4[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

// BenchmarkRouteLookupV4Addr is BenchmarkRouteLookupV4 through
// Lookup(netip.Addr) over the same array bart reads.
func BenchmarkRouteLookupV4Addr(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v4/"+size]()
			t, perRoute := s.ours(b)
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup(s.addrs[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

func BenchmarkRouteLookupV4Bart(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v4/"+size]()
			t, perRoute := s.bart()
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup(s.addrs[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

func BenchmarkRouteLookupV4BartFast(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v4/"+size]()
			t, perRoute := s.bartFast()
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup(s.addrs[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

func BenchmarkRouteLookupV6(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v6/"+size]()
			t, perRoute := s.ours(b)
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup(s.addrs[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

func BenchmarkRouteLookupV6Bart(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v6/"+size]()
			t, perRoute := s.bart()
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup(s.addrs[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

func BenchmarkRouteLookupV6BartFast(b *testing.B) {
	for _, size := range sizes {
		b.Run(size, func(b *testing.B) {
			s := sets["v6/"+size]()
			t, perRoute := s.bartFast()
			b.ReportAllocs()
			hits, ops := 0, 0
			for ; b.Loop(); ops++ {
				if _, ok := t.Lookup(s.addrs[ops&(nAddrs-1)]); ok {
					hits++
				}
			}
			report(b, hits, ops, perRoute)
		})
	}
}

// BenchmarkRouteBuild compiles 100k routes (the IPv4 set) into a snapshot:
// the cost of one update of a big table.
func BenchmarkRouteBuild(b *testing.B) {
	b.Run("100k", func(b *testing.B) {
		s := sets["v4/100k"]()
		var bl Builder
		for i, p := range s.routes {
			if err := bl.Insert(p, s.hops[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for i := uint64(0); b.Loop(); i++ {
			bl.Build(i)
		}
	})
}

// BenchmarkRouteBuildBart inserts the same 100k routes into a new bart
// table, for comparison.
func BenchmarkRouteBuildBart(b *testing.B) {
	b.Run("100k", func(b *testing.B) {
		s := sets["v4/100k"]()
		b.ReportAllocs()
		for b.Loop() {
			t := new(bart.Table[NextHop])
			for i, p := range s.routes {
				t.Insert(p, s.hops[i])
			}
		}
	})
}

// randIn returns a random address inside p.
func randIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if r.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
