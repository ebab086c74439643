package lpm

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// model is the obviously-right reference: a map of prefixes, searched by
// a linear scan that keeps the longest prefix containing the address.
type model[V comparable] map[netip.Prefix]V

func (m model[V]) lookup(a netip.Addr) (V, bool) {
	var best V
	bits := -1
	for p, v := range m {
		if p.Bits() > bits && p.Contains(a) {
			best, bits = v, p.Bits()
		}
	}
	return best, bits >= 0
}

// lookupPrefix is the longest prefix in m containing all of q.
func (m model[V]) lookupPrefix(q netip.Prefix) (netip.Prefix, V, bool) {
	var best netip.Prefix
	var bv V
	for p, v := range m {
		if p.Bits() <= q.Bits() && p.Contains(q.Addr()) && p.Bits() > best.Bits() {
			best, bv = p, v
		}
	}
	return best, bv, best.IsValid()
}

type entry[V any] struct {
	P netip.Prefix
	V V
}

type result[V any] struct {
	A  netip.Addr
	V  V
	OK bool
}

type prefixResult[V any] struct {
	Q  netip.Prefix
	P  netip.Prefix
	V  V
	OK bool
}

// sorted is the model's content in the order Table.All promises.
func (m model[V]) sorted() []entry[V] {
	var es []entry[V]
	for p, v := range m {
		es = append(es, entry[V]{p, v})
	}
	slices.SortFunc(es, func(a, b entry[V]) int {
		if a.P.Addr().Is4() != b.P.Addr().Is4() {
			if a.P.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := a.P.Addr().Compare(b.P.Addr()); c != 0 {
			return c
		}
		return a.P.Bits() - b.P.Bits()
	})
	return es
}

// probes returns addresses worth looking up in m: both ends of every prefix
// and the addresses just outside them, one random address inside each, and
// extra.
func (m model[V]) probes(r *rand.Rand, extra []netip.Addr) []netip.Addr {
	as := slices.Clone(extra)
	for p := range m {
		first := p.Addr()
		last := lastAddr(p)
		as = append(as, first, last, randIn(r, p))
		if a := first.Prev(); a.IsValid() {
			as = append(as, a)
		}
		if a := last.Next(); a.IsValid() {
			as = append(as, a)
		}
	}
	return as
}

// check compares every read of tab with the model.
func check[V comparable](t *testing.T, what string, tab *Table[V], m model[V], probes []netip.Addr, queries []netip.Prefix) {
	t.Helper()
	if tab.Len() != len(m) {
		t.Fatalf("%s: Len() = %d, want %d", what, tab.Len(), len(m))
	}
	var got []entry[V]
	for p, v := range tab.All() {
		got = append(got, entry[V]{p, v})
	}
	if diff := cmp.Diff(m.sorted(), got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("%s: All() (-want +got):\n%s", what, diff)
	}
	for p, v := range m {
		if g, ok := tab.Get(p); !ok || g != v {
			t.Fatalf("%s: Get(%s) = %v, %v; want %v, true", what, p, g, ok, v)
		}
	}

	var want, have []result[V]
	for _, a := range probes {
		wv, wok := m.lookup(a)
		want = append(want, result[V]{a, wv, wok})
		gv, gok := tab.Lookup(a)
		have = append(have, result[V]{a, gv, gok})
		// The fast path must agree with Lookup.
		if a.Is4() {
			if fv, fok := tab.Lookup4(a.As4()); fv != gv || fok != gok {
				t.Fatalf("%s: Lookup(%s) = %v, %v but Lookup4 says %v, %v", what, a, gv, gok, fv, fok)
			}
		}
	}
	if diff := cmp.Diff(want, have, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("%s: Lookup (-want +got):\n%s", what, diff)
	}

	var wantP, haveP []prefixResult[V]
	for _, q := range queries {
		wp, wv, wok := m.lookupPrefix(q)
		wantP = append(wantP, prefixResult[V]{q, wp, wv, wok})
		gp, gv, gok := tab.LookupPrefix(q)
		haveP = append(haveP, prefixResult[V]{q, gp, gv, gok})
	}
	if diff := cmp.Diff(wantP, haveP, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("%s: LookupPrefix (-want +got):\n%s", what, diff)
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
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

// gen makes random prefixes that overlap a lot: a few clusters, lengths
// from /0 to the full length with the ends favoured, and prefixes made by
// lengthening or shortening ones already chosen, so that nesting goes deep.
type gen struct {
	r     *rand.Rand
	known []netip.Prefix
}

var (
	bases4 = []netip.Addr{netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.244.7.0"), netip.MustParseAddr("192.168.1.0")}
	bases6 = []netip.Addr{netip.MustParseAddr("fd00::"), netip.MustParseAddr("2001:db8:1:2:3:4:5:6"), netip.MustParseAddr("fd00::ffff:10.244.0.0")}
)

func (g *gen) prefix(v6 bool) netip.Prefix {
	r := g.r
	width := 32
	if v6 {
		width = 128
	}
	var p netip.Prefix
	if n := len(g.known); n > 0 && r.IntN(3) == 0 {
		// Lengthen or shorten a known prefix of the same family.
		q := g.known[r.IntN(n)]
		if q.Addr().Is4() == !v6 {
			a := randIn(r, q)
			p, _ = a.Prefix(r.IntN(width + 1))
		}
	}
	if !p.IsValid() {
		var b []byte
		switch r.IntN(4) {
		case 0: // anywhere
			b = make([]byte, width/8)
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
		default: // near a cluster base: a few random low bits
			base := bases4[r.IntN(len(bases4))]
			if v6 {
				base = bases6[r.IntN(len(bases6))]
			}
			b = base.AsSlice()
			for range 1 + r.IntN(3) {
				i := width - 1 - r.IntN(min(width, 24))
				if r.IntN(4) == 0 {
					i = r.IntN(width)
				}
				b[i/8] ^= 0x80 >> (i % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		var bits int
		switch r.IntN(8) {
		case 0:
			bits = width
		case 1:
			bits = r.IntN(3) // /0, /1, /2
		case 2:
			bits = width - r.IntN(8)
		default:
			bits = r.IntN(width + 1)
		}
		p, _ = a.Prefix(bits)
	}
	g.known = append(g.known, p)
	return p
}

func (g *gen) addr() netip.Addr {
	r := g.r
	if n := len(g.known); n > 0 && r.IntN(4) != 0 {
		return randIn(r, g.known[r.IntN(n)])
	}
	v6 := r.IntN(2) == 0
	p := g.prefix(v6)
	g.known = g.known[:len(g.known)-1]
	return randIn(r, p)
}
