package route

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lookupModel is the obviously-right route lookup: scan every route, keep
// the longest that contains a.
func lookupModel(routes map[netip.Prefix]NextHop, a netip.Addr) (NextHop, bool) {
	var best NextHop
	bits := -1
	for p, h := range routes {
		if p.Bits() > bits && p.Contains(a) {
			best, bits = h, p.Bits()
		}
	}
	return best, bits >= 0
}

// randRoute makes overlapping routes: pod CIDRs and host routes inside a
// cluster CIDR, service and default routes, some anywhere.
func randRoute(r *rand.Rand) netip.Prefix {
	var a netip.Addr
	switch r.IntN(4) {
	case 0:
		a = netip.AddrFrom4([4]byte{10, 244, byte(r.IntN(8)), byte(r.IntN(256))})
	case 1:
		a = netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x10, 0x02, 0x44, 0, byte(r.IntN(8)), 14: byte(r.IntN(4)), 15: byte(r.IntN(256))})
	case 2:
		a = netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
	default:
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		a = netip.AddrFrom16(b)
	}
	bits := r.IntN(a.BitLen() + 1)
	switch r.IntN(4) {
	case 0:
		bits = a.BitLen()
	case 1:
		bits = min(bits, 24+r.IntN(a.BitLen()-23)) // long: /24-/32 or /24-/128
	}
	p, _ := a.Prefix(bits)
	return p
}

func randNextHop(r *rand.Rand) NextHop {
	switch r.IntN(5) {
	case 0:
		return NextHop{Kind: LocalPort, Port: ViaEndpoint}
	case 1:
		return NextHop{Kind: LocalPort, Port: uint16(r.IntN(64))}
	case 2:
		return NextHop{Kind: RemoteNode, Node: uint16(r.IntN(32)), Tunnel: Tunnel(r.IntN(3))}
	case 3:
		return NextHop{Kind: SlowPath}
	}
	return NextHop{Kind: Drop}
}

type result struct {
	Addr netip.Addr
	Hop  NextHop
	OK   bool
}

// TestAgainstModel checks random tables, changed through the Builder a
// snapshot hands out, against the linear scan.
func TestAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	routes := map[netip.Prefix]NextHop{}
	tab, err := New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for gen := uint64(1); gen <= 150; gen++ {
		b := tab.Builder()
		for range r.IntN(40) {
			p := randRoute(r)
			if r.IntN(4) == 0 {
				if b.Delete(p) != (routes[p] != NextHop{}) {
					t.Fatalf("gen %d: Delete(%s) disagrees with the model", gen, p)
				}
				delete(routes, p)
				continue
			}
			h := randNextHop(r)
			if err := b.Insert(p, h); err != nil {
				t.Fatal(err)
			}
			routes[p.Masked()] = h
		}
		tab = b.Build(gen)
		if tab.Generation() != gen || tab.Len() != len(routes) || b.Len() != len(routes) {
			t.Fatalf("gen %d: Generation %d, Len %d, Builder.Len %d; want %d routes", gen, tab.Generation(), tab.Len(), b.Len(), len(routes))
		}
		got := map[netip.Prefix]NextHop{}
		for p, h := range tab.All() {
			got[p] = h
		}
		if diff := cmp.Diff(routes, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Fatalf("gen %d: All() (-want +got):\n%s", gen, diff)
		}

		var want, have []result
		probed := 0
		for p := range routes { // a random sample: map order is random
			if probed++; probed > 150 {
				break
			}
			for _, a := range []netip.Addr{p.Addr(), p.Addr().Prev(), randIn(r, p)} {
				if !a.IsValid() {
					continue
				}
				h, ok := lookupModel(routes, a)
				want = append(want, result{a, h, ok})
				h, ok = tab.Lookup(a)
				have = append(have, result{a, h, ok})
				if a.Is4() {
					h, ok = tab.Lookup4(a.As4())
					if last := have[len(have)-1]; h != last.Hop || ok != last.OK {
						t.Fatalf("gen %d: Lookup(%s) = %v, %v; Lookup4 says %v, %v", gen, a, last.Hop, last.OK, h, ok)
					}
				}
			}
		}
		if diff := cmp.Diff(want, have, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("gen %d: lookups (-want +got):\n%s", gen, diff)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		h  NextHop
		ok bool
	}{
		{NextHop{Kind: LocalPort, Port: 3}, true},
		{NextHop{Kind: LocalPort, Port: ViaEndpoint}, true},
		{NextHop{Kind: LocalPort, Port: 3, Node: 1}, false},
		{NextHop{Kind: LocalPort, Tunnel: VXLAN}, false},
		{NextHop{Kind: RemoteNode, Node: 7, Tunnel: IPIP}, true},
		{NextHop{Kind: RemoteNode, Node: 7, Tunnel: 9}, false},
		{NextHop{Kind: RemoteNode, Node: 7, Port: 1}, false},
		{NextHop{Kind: SlowPath}, true},
		{NextHop{Kind: SlowPath, Node: 1}, false},
		{NextHop{Kind: Drop}, true},
		{NextHop{Kind: Drop, Tunnel: VXLAN}, false},
		{NextHop{}, false},
		{NextHop{Kind: 99}, false},
	} {
		if err := c.h.Check(); (err == nil) != c.ok {
			t.Errorf("%+v.Check() = %v; want ok %v", c.h, err, c.ok)
		}
	}
	var b Builder
	if err := b.Insert(netip.MustParsePrefix("10.0.0.0/8"), NextHop{}); err == nil {
		t.Error("Insert accepted an invalid next hop")
	}
	if err := b.Insert(netip.Prefix{}, NextHop{Kind: Drop}); err == nil {
		t.Error("Insert accepted an invalid prefix")
	}
	if _, err := New(1, map[netip.Prefix]NextHop{netip.MustParsePrefix("::/0"): {Kind: Drop, Port: 1}}); err == nil {
		t.Error("New accepted an invalid next hop")
	}
	if got := fmt.Sprint(RemoteNode, VXLAN, Kind(0), Kind(42), Tunnel(42)); got != "RemoteNode VXLAN invalid Kind(42) Tunnel(42)" {
		t.Errorf("String methods: %q", got)
	}
}

// TestNodeTable builds the table of the package comment and checks what
// pods, remote pods, services and the rest resolve to.
func TestNodeTable(t *testing.T) {
	pp, aa := netip.MustParsePrefix, netip.MustParseAddr
	local := NextHop{Kind: LocalPort, Port: ViaEndpoint}
	node2 := NextHop{Kind: RemoteNode, Node: 2, Tunnel: VXLAN}
	slow := NextHop{Kind: SlowPath}
	pod := NextHop{Kind: LocalPort, Port: 4}
	tab, err := New(7, map[netip.Prefix]NextHop{
		pp("10.244.1.0/24"):   local,
		pp("10.244.1.9/32"):   pod,
		pp("10.244.2.0/24"):   node2,
		pp("10.96.0.0/12"):    slow,
		pp("0.0.0.0/0"):       slow,
		pp("fd00:244:1::/64"): local,
		pp("::/0"):            {Kind: Drop},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a    string
		want NextHop
	}{
		{"10.244.1.5", local}, {"10.244.1.9", pod}, {"10.244.2.200", node2},
		{"10.100.3.4", slow}, {"8.8.8.8", slow}, {"fd00:244:1::5", local}, {"2001:db8::1", NextHop{Kind: Drop}},
	} {
		if got, ok := tab.Lookup(aa(c.a)); !ok || got != c.want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", c.a, got, ok, c.want)
		}
	}
	if p, h, ok := tab.LookupPrefix(pp("10.244.2.128/25")); !ok || p != pp("10.244.2.0/24") || h != node2 {
		t.Errorf("LookupPrefix(10.244.2.128/25) = %v, %+v, %v", p, h, ok)
	}
	if h, ok := tab.Get(pp("10.244.1.9/32")); !ok || h != pod {
		t.Errorf("Get(10.244.1.9/32) = %+v, %v", h, ok)
	}
	if s := tab.Stats(); s.Prefixes4 != 5 || s.Prefixes6 != 2 {
		t.Errorf("Stats() = %+v", s)
	}
	b := tab.Builder()
	if h, ok := b.Get(pp("10.96.0.0/12")); !ok || h != slow {
		t.Errorf("Builder().Get(10.96.0.0/12) = %+v, %v", h, ok)
	}
}

func TestLookupAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var b Builder
	for range 500 {
		if err := b.Insert(randRoute(r), randNextHop(r)); err != nil {
			t.Fatal(err)
		}
	}
	tab := b.Build(1)
	a4, a6 := netip.MustParseAddr("10.244.1.1"), netip.MustParseAddr("fd00:10:244::1")
	b4 := a4.As4()
	if n := testing.AllocsPerRun(1000, func() {
		tab.Lookup(a4)
		tab.Lookup(a6)
		tab.Lookup4(b4)
	}); n != 0 {
		t.Errorf("lookups allocate %v times per run", n)
	}
}

// TestConcurrentSnapshots has workers look up in whatever snapshot the
// atomic pointer holds while the agent builds and publishes new ones.
// Every route of generation g points at node g, so a reader that saw a
// torn or half-built snapshot would notice. Run it with -race.
func TestConcurrentSnapshots(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var cur atomic.Pointer[Table]
	b := &Builder{}
	publish := func(gen uint64) {
		nb := &Builder{}
		for p := range b.b.Build().All() {
			nb.Insert(p, NextHop{Kind: RemoteNode, Node: uint16(gen)})
		}
		nb.Insert(netip.MustParsePrefix("0.0.0.0/0"), NextHop{Kind: RemoteNode, Node: uint16(gen)})
		nb.Insert(netip.MustParsePrefix("::/0"), NextHop{Kind: RemoteNode, Node: uint16(gen)})
		b = nb
		cur.Store(b.Build(gen))
	}
	publish(1)
	var addrs []netip.Addr
	for range 256 {
		addrs = append(addrs, randIn(r, randRoute(r)))
	}

	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			var last uint64
			for i := w; !done.Load(); i++ {
				tab := cur.Load() // once per batch
				gen := tab.Generation()
				if gen < last {
					t.Errorf("worker %d: generation went back from %d to %d", w, last, gen)
					return
				}
				last = gen
				for j := range 32 {
					h, ok := tab.Lookup(addrs[(i*32+j)%len(addrs)])
					if !ok || h.Node != uint16(gen) {
						t.Errorf("worker %d: snapshot %d returned %+v, %v", w, gen, h, ok)
						return
					}
				}
			}
		})
	}
	for gen := uint64(2); gen <= 300; gen++ {
		for range 10 {
			if r.IntN(3) == 0 {
				b.Delete(randRoute(r))
			} else {
				b.Insert(randRoute(r), NextHop{Kind: Drop})
			}
		}
		publish(gen)
	}
	done.Store(true)
	wg.Wait()
}
