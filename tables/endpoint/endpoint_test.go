package endpoint

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if !v6 {
		// A small space so that lookups hit and miss and probes collide.
		return netip.AddrFrom4([4]byte{10, 244, byte(r.IntN(4)), byte(r.IntN(256))})
	}
	var b [16]byte
	b[0], b[1] = 0xfd, 0x00
	b[14], b[15] = byte(r.IntN(4)), byte(r.IntN(256))
	return netip.AddrFrom16(b)
}

// TestAgainstMap checks the table against a Go map, the obviously-right
// model, over random contents and random lookups.
func TestAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		model := map[netip.Addr]Endpoint{}
		n := r.IntN(600)
		for range n {
			a := randAddr(r, r.IntN(2) == 0)
			model[a] = Endpoint{
				Port:     uint16(r.IntN(1000)),
				MAC:      [6]byte{2, 0, 0, 0, byte(r.IntN(256)), byte(r.IntN(256))},
				Identity: r.Uint32(),
			}
		}
		tab, err := New(uint64(round), model)
		if err != nil {
			t.Fatal(err)
		}
		if tab.Len() != len(model) || tab.Generation() != uint64(round) {
			t.Fatalf("round %d: Len %d gen %d, want %d %d", round, tab.Len(), tab.Generation(), len(model), round)
		}
		if diff := cmp.Diff(model, tab.All()); diff != "" {
			t.Fatalf("round %d: All() (-want +got):\n%s", round, diff)
		}
		for range 2000 {
			a := randAddr(r, r.IntN(2) == 0)
			want, wok := model[a]
			got, gok := tab.Lookup(a)
			if wok != gok || want != got {
				t.Fatalf("round %d: Lookup(%s) = %v, %v; want %v, %v", round, a, got, gok, want, wok)
			}
		}
	}
}

func TestMappedAndEmpty(t *testing.T) {
	empty, err := New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("empty table found an IPv4 address")
	}
	if _, ok := empty.Lookup(netip.MustParseAddr("fd00::1")); ok {
		t.Error("empty table found an IPv6 address")
	}
	ep := Endpoint{Port: 7}
	tab, err := New(1, map[netip.Addr]Endpoint{netip.MustParseAddr("::ffff:10.1.2.3"): ep})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"10.1.2.3", "::ffff:10.1.2.3"} {
		if got, ok := tab.Lookup(netip.MustParseAddr(s)); !ok || got != ep {
			t.Errorf("Lookup(%s) = %v, %v; want %v, true", s, got, ok, ep)
		}
	}
	if _, err := New(2, map[netip.Addr]Endpoint{{}: ep}); err == nil {
		t.Error("New accepted the zero address")
	}
}

func bigTable(tb testing.TB, n int) (*Table, []netip.Addr) {
	m := map[netip.Addr]Endpoint{}
	addrs := make([]netip.Addr, 0, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		m[a] = Endpoint{Port: uint16(i), Identity: uint32(i%1000) + 1}
		addrs = append(addrs, a)
	}
	tab, err := New(1, m)
	if err != nil {
		tb.Fatal(err)
	}
	return tab, addrs
}

func TestLookupAllocs(t *testing.T) {
	tab, addrs := bigTable(t, 100)
	v6, _ := New(1, map[netip.Addr]Endpoint{netip.MustParseAddr("fd00::5"): {}})
	a6 := netip.MustParseAddr("fd00::5")
	if n := testing.AllocsPerRun(1000, func() {
		tab.Lookup(addrs[3])
		tab.Lookup4(addrs[4].As4())
		v6.Lookup(a6)
	}); n != 0 {
		t.Errorf("Lookup allocates %v times per run", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 100000} {
		tab, addrs := bigTable(b, n)
		b.Run(map[int]string{10: "10", 100000: "100k"}[n], func(b *testing.B) {
			b.ReportAllocs()
			var hits int
			for i := 0; b.Loop(); i++ {
				if _, ok := tab.Lookup(addrs[i%len(addrs)]); ok {
					hits++
				}
			}
			if hits == 0 {
				b.Fatal("no hits")
			}
		})
	}
}
