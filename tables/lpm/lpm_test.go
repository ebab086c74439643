package lpm

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAgainstModel runs random sequences of inserts and deletes, builds
// snapshots along the way with every root size, and checks each snapshot
// against the linear-scan model.
func TestAgainstModel(t *testing.T) {
	rounds := 120
	if testing.Short() {
		rounds = 30
	}
	r := rand.New(rand.NewPCG(7, 11))
	for round := range rounds {
		g := &gen{r: r}
		m := model[uint16]{}
		var b Builder[uint16]
		b.rootBits4 = 1 + r.IntN(maxRootBits+1) // forced 0..16
		b.rootBits6 = 1 + r.IntN(maxRootBits+1)
		if r.IntN(3) == 0 {
			b.rootBits4, b.rootBits6 = 0, 0 // automatic
		}
		ops := r.IntN(400)
		for op := range ops {
			switch k := r.IntN(10); {
			case k < 7:
				p := g.prefix(r.IntN(2) == 0)
				v := uint16(r.IntN(6)) // few values: runs merge, values repeat
				if err := b.Insert(p, v); err != nil {
					t.Fatal(err)
				}
				m[p] = v
			case k < 9 && len(g.known) > 0:
				p := g.known[r.IntN(len(g.known))]
				_, had := m[p]
				if got := b.Delete(p); got != had {
					t.Fatalf("round %d: Delete(%s) = %v, want %v", round, p, got, had)
				}
				delete(m, p)
			default:
				if r.IntN(8) == 0 || op == ops-1 {
					checkRandom(t, r, g, round, &b, m)
				}
			}
		}
		checkRandom(t, r, g, round, &b, m)
	}
}

func checkRandom(t *testing.T, r *rand.Rand, g *gen, round int, b *Builder[uint16], m model[uint16]) {
	t.Helper()
	if b.Len() != len(m) {
		t.Fatalf("round %d: Builder.Len() = %d, want %d", round, b.Len(), len(m))
	}
	tab := b.Build()
	var extra []netip.Addr
	for range 300 {
		extra = append(extra, g.addr())
	}
	var queries []netip.Prefix
	for range 50 {
		a := g.addr()
		q, _ := a.Prefix(r.IntN(a.BitLen() + 1))
		queries = append(queries, q)
	}
	check(t, "round", tab, m, m.probes(r, extra), queries)
	if r.IntN(4) == 0 {
		// A snapshot's Builder must reproduce it.
		again := tab.Builder().Build()
		check(t, "rebuilt", again, m, m.probes(r, extra), queries)
	}
}

// TestEdges covers the cases a random walk may take long to reach.
func TestEdges(t *testing.T) {
	pp := netip.MustParsePrefix
	aa := netip.MustParseAddr
	var b Builder[int]
	for _, c := range []struct {
		p string
		v int
	}{
		{"0.0.0.0/0", 1}, {"::/0", 2}, {"10.0.0.7/32", 3}, {"10.0.0.0/8", 0},
		{"255.255.255.255/32", 4}, {"::ffff:10.0.0.0/104", 5}, {"fd00::1/128", 6},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 7}, {"10.1.2.3/24", 8},
	} {
		if err := b.Insert(pp(c.p), c.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Insert(netip.Prefix{}, 9); err == nil {
		t.Error("Insert accepted an invalid prefix")
	}
	tab := b.Build()
	for _, c := range []struct {
		a  string
		v  int
		ok bool
	}{
		{"10.0.0.7", 3, true},
		{"10.0.0.8", 0, true}, // a stored zero value is a match
		{"10.1.2.200", 8, true},
		{"11.0.0.0", 1, true},
		{"255.255.255.255", 4, true},
		{"::ffff:10.0.0.7", 5, true}, // mapped addresses are IPv6
		{"::ffff:11.0.0.1", 2, true},
		{"fd00::1", 6, true},
		{"fd00::2", 2, true},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 7, true},
	} {
		if v, ok := tab.Lookup(aa(c.a)); v != c.v || ok != c.ok {
			t.Errorf("Lookup(%s) = %v, %v; want %v, %v", c.a, v, ok, c.v, c.ok)
		}
	}
	if v, ok := tab.Get(pp("10.1.2.0/24")); !ok || v != 8 {
		t.Errorf("Get(10.1.2.0/24) = %v, %v; want 8, true (inserted unmasked)", v, ok)
	}
	if p, v, ok := tab.LookupPrefix(pp("10.0.0.0/30")); p != pp("10.0.0.0/8") || v != 0 || !ok {
		t.Errorf("LookupPrefix(10.0.0.0/30) = %v, %v, %v; want 10.0.0.0/8, 0, true", p, v, ok)
	}
	if _, _, ok := tab.LookupPrefix(netip.Prefix{}); ok {
		t.Error("LookupPrefix(invalid) found something")
	}
	if _, ok := tab.Get(netip.Prefix{}); ok {
		t.Error("Get(invalid) found something")
	}

	var empty Builder[int]
	e := empty.Build()
	for _, a := range []string{"0.0.0.0", "1.2.3.4", "::", "fd00::1"} {
		if _, ok := e.Lookup(aa(a)); ok {
			t.Errorf("empty table: Lookup(%s) found something", a)
		}
	}
	if v, ok := b.Get(pp("10.0.0.7/32")); !ok || v != 3 {
		t.Errorf("Builder.Get(10.0.0.7/32) = %v, %v; want 3, true", v, ok)
	}
	n := 0
	for range tab.All() {
		n++
		break
	}
	for range tab.All() {
		if n++; n == 7 {
			break // past the IPv4 prefixes
		}
	}
	if n != 7 {
		t.Errorf("All stopped after %d, want 7", n)
	}
	if b.Delete(netip.Prefix{}) || b.Delete(pp("1.0.0.0/8")) {
		t.Error("Delete of an absent prefix reported true")
	}
	if s := tab.Stats(); s.Prefixes4 != 5 || s.Prefixes6 != 4 || s.Values != 10 || s.Bytes <= 0 {
		t.Errorf("Stats() = %+v", s)
	}
}

// TestDeterministic checks that equal contents give identical snapshots
// whatever the map order, so a rebuild with no change is no change.
func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	g := &gen{r: r}
	var b Builder[int]
	for range 2000 {
		b.Insert(g.prefix(r.IntN(2) == 0), r.IntN(50))
	}
	a, c := b.Build(), b.Build()
	if a.Stats() != c.Stats() {
		t.Fatalf("two builds differ: %+v vs %+v", a.Stats(), c.Stats())
	}
	for i := range a.vals {
		if a.vals[i] != c.vals[i] {
			t.Fatalf("value %d differs: %v vs %v", i, a.vals[i], c.vals[i])
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	g := &gen{r: r}
	var b Builder[uint32]
	for range 1000 {
		b.Insert(g.prefix(r.IntN(2) == 0), r.Uint32())
	}
	tab := b.Build()
	a4, a6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	b4 := a4.As4()
	q := netip.MustParsePrefix("10.0.0.0/30")
	if n := testing.AllocsPerRun(1000, func() {
		tab.Lookup(a4)
		tab.Lookup(a6)
		tab.Lookup4(b4)
		tab.Get(q)
		tab.LookupPrefix(q)
	}); n != 0 {
		t.Errorf("lookups allocate %v times per run", n)
	}
}

// TestConcurrentSnapshots has readers look up in whatever snapshot the
// atomic pointer holds while a writer builds and publishes new ones. Every
// value in snapshot g is g, so a reader that saw a mix of two snapshots
// (or a half-built one) would notice. Run it with -race.
func TestConcurrentSnapshots(t *testing.T) {
	var cur atomic.Pointer[Table[uint64]]
	var b Builder[uint64]
	r := rand.New(rand.NewPCG(9, 10))
	g := &gen{r: r}
	publish := func(gen uint64) {
		for p := range b.m {
			b.m[p] = gen
		}
		b.Insert(netip.MustParsePrefix("0.0.0.0/0"), gen)
		b.Insert(netip.MustParsePrefix("::/0"), gen)
		cur.Store(b.Build())
	}
	publish(1)
	var addrs []netip.Addr
	for range 512 {
		addrs = append(addrs, g.addr())
	}

	const gens = 200
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			var last uint64
			for i := w; !done.Load(); i++ {
				tab := cur.Load()
				want, _ := tab.Get(netip.MustParsePrefix("0.0.0.0/0"))
				if want < last {
					t.Errorf("reader %d: generation went back from %d to %d", w, last, want)
					return
				}
				last = want
				for j := range 64 {
					v, ok := tab.Lookup(addrs[(i*64+j)%len(addrs)])
					if !ok || v != want {
						t.Errorf("reader %d: snapshot %d returned %v, %v", w, want, v, ok)
						return
					}
				}
			}
		})
	}
	for gen := uint64(2); gen <= gens; gen++ {
		for range 20 {
			if r.IntN(4) == 0 && len(g.known) > 0 {
				b.Delete(g.known[r.IntN(len(g.known))])
			} else {
				b.Insert(g.prefix(r.IntN(2) == 0), 0)
			}
		}
		publish(gen)
	}
	done.Store(true)
	wg.Wait()
}
