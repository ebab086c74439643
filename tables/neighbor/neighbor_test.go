package neighbor

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// randAddr draws from a small space, so that lookups hit and miss and
// probe sequences collide: node addresses in one IPv4 and one IPv6 subnet,
// some anywhere.
func randAddr(r *rand.Rand) netip.Addr {
	switch r.IntN(5) {
	case 0, 1:
		return netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(2)), byte(r.IntN(256))})
	case 2:
		return netip.AddrFrom16([16]byte{0xfd, 0x00, 0, 0, 0, 0, 0, 1, 14: byte(r.IntN(2)), 15: byte(r.IntN(256))})
	case 3:
		return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(255))})
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return netip.AddrFrom16(b)
}

func randNeighbor(r *rand.Rand) Neighbor {
	return Neighbor{MAC: [6]byte{2, 0, 0, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}, Uplink: uint16(r.IntN(4))}
}

type result struct {
	Addr netip.Addr
	Nb   Neighbor
	OK   bool
}

// TestAgainstMap checks the table against a Go map keyed by the unmapped
// address, the obviously-right model, over random contents and lookups,
// IPv4 addresses also asked in their IPv4-mapped form.
func TestAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 100 {
		model := map[netip.Addr]Neighbor{}
		for range r.IntN(700) {
			model[randAddr(r)] = randNeighbor(r)
		}
		tab, err := New(uint64(round), model)
		if err != nil {
			t.Fatal(err)
		}
		if tab.Len() != len(model) || tab.Generation() != uint64(round) {
			t.Fatalf("round %d: Len %d gen %d; want %d %d", round, tab.Len(), tab.Generation(), len(model), round)
		}
		if diff := cmp.Diff(model, tab.All(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("round %d: All() (-want +got):\n%s", round, diff)
		}
		var want, have []result
		for range 2000 {
			a := randAddr(r)
			w, wok := model[a]
			want = append(want, result{a, w, wok})
			g, gok := tab.Lookup(a)
			have = append(have, result{a, g, gok})
			if a.Is4() {
				if m, mok := tab.Lookup(netip.AddrFrom16(a.As16())); m != g || mok != gok {
					t.Fatalf("round %d: Lookup(%s) = %v, %v but its mapped form gives %v, %v", round, a, g, gok, m, mok)
				}
				if f, fok := tab.Lookup4(a.As4()); f != g || fok != gok {
					t.Fatalf("round %d: Lookup(%s) = %v, %v but Lookup4 gives %v, %v", round, a, g, gok, f, fok)
				}
			}
		}
		if diff := cmp.Diff(want, have, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("round %d: lookups (-want +got):\n%s", round, diff)
		}
	}
}

func TestErrorsAndEdges(t *testing.T) {
	aa := netip.MustParseAddr
	nb := Neighbor{MAC: [6]byte{2, 1, 2, 3, 4, 5}, Uplink: 1}
	for _, bad := range []map[netip.Addr]Neighbor{
		{{}: nb},
		{aa("0.0.0.0"): nb},
		{aa("::"): nb},
	} {
		if _, err := New(1, bad); !errors.Is(err, errAddr) {
			t.Errorf("New(%v) = %v; want errAddr", bad, err)
		}
	}
	if _, err := New(1, map[netip.Addr]Neighbor{aa("10.0.0.1"): nb, aa("::ffff:10.0.0.1"): nb}); !errors.Is(err, errDup) {
		t.Errorf("New with an address in both forms = %v; want errDup", err)
	}
	empty, err := New(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{{}, aa("10.0.0.1"), aa("::"), aa("fd00::1")} {
		if _, ok := empty.Lookup(a); ok {
			t.Errorf("empty table: Lookup(%v) found something", a)
		}
	}
	tab, err := New(2, map[netip.Addr]Neighbor{aa("fe80::1%eth0"): nb})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tab.Lookup(aa("fe80::1")); !ok || got != nb {
		t.Errorf("Lookup(fe80::1) = %v, %v; want the entry made with a zone", got, ok)
	}
	if _, ok := tab.Lookup(netip.Addr{}); ok {
		t.Error("Lookup of the invalid address found something")
	}
}

func TestLookupAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	m := map[netip.Addr]Neighbor{}
	for range 100 {
		m[randAddr(r)] = randNeighbor(r)
	}
	tab, err := New(1, m)
	if err != nil {
		t.Fatal(err)
	}
	a4, a6 := netip.MustParseAddr("192.168.0.7"), netip.MustParseAddr("fd00:0:0:1::7")
	b4 := a4.As4()
	if n := testing.AllocsPerRun(1000, func() {
		tab.Lookup(a4)
		tab.Lookup(a6)
		tab.Lookup4(b4)
	}); n != 0 {
		t.Errorf("lookups allocate %v times per run", n)
	}
}

// TestConcurrentSnapshots has workers look up while the agent publishes
// new snapshots; in generation g every neighbour's uplink is g. Run it
// with -race.
func TestConcurrentSnapshots(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	var addrs []netip.Addr
	for range 300 {
		addrs = append(addrs, randAddr(r))
	}
	build := func(gen uint64) *Table {
		m := map[netip.Addr]Neighbor{}
		for _, a := range addrs {
			m[a] = Neighbor{Uplink: uint16(gen)}
		}
		tab, err := New(gen, m)
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	var cur atomic.Pointer[Table]
	cur.Store(build(1))
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			var last uint64
			for i := w; !done.Load(); i++ {
				tab := cur.Load()
				gen := tab.Generation()
				if gen < last {
					t.Errorf("worker %d: generation went back from %d to %d", w, last, gen)
					return
				}
				last = gen
				for j := range 32 {
					nb, ok := tab.Lookup(addrs[(i*32+j)%len(addrs)])
					if !ok || nb.Uplink != uint16(gen) {
						t.Errorf("worker %d: snapshot %d returned %v, %v", w, gen, nb, ok)
						return
					}
				}
			}
		})
	}
	for gen := uint64(2); gen <= 300; gen++ {
		cur.Store(build(gen))
	}
	done.Store(true)
	wg.Wait()
}

// BenchmarkNeighborLookup looks up the IPv4 underlay addresses of a
// 5,000-node cluster, in random order.
func BenchmarkNeighborLookup(b *testing.B) {
	tab, addrs := benchTable(b, false)
	b.ReportAllocs()
	hits := 0
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.Lookup4(addrs[i&(len(addrs)-1)].As4()); ok {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hits")
	}
}

// BenchmarkNeighborLookup6 is the same over IPv6 underlay addresses.
func BenchmarkNeighborLookup6(b *testing.B) {
	tab, addrs := benchTable(b, true)
	b.ReportAllocs()
	hits := 0
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.Lookup(addrs[i&(len(addrs)-1)]); ok {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hits")
	}
}

func benchTable(b *testing.B, v6 bool) (*Table, []netip.Addr) {
	r := rand.New(rand.NewPCG(11, 12))
	m := map[netip.Addr]Neighbor{}
	var nodes []netip.Addr
	for i := range 5000 {
		a := netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
		if v6 {
			a = netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 1, 14: byte(i >> 8), 15: byte(i)})
		}
		m[a] = randNeighbor(r)
		nodes = append(nodes, a)
	}
	tab, err := New(1, m)
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 1<<14)
	for i := range addrs {
		addrs[i] = nodes[r.IntN(len(nodes))]
	}
	return tab, addrs
}
