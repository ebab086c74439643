package lpm

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// reads4 counts the nodes and fringes a lookup of x visits, walking the
// arena the way find4 does.
func (tr *trie) reads4(x uint32) (nodes, fringes int) {
	a, r := tr.a, tr.rootBits
	e := a[x>>(32-r)]
	k := x << r
	for e >= tagNode {
		o := e & offMask
		if e >= tagFringe {
			return nodes, 1
		}
		nodes++
		e = slot(a, o, k>>24)
		k <<= nodeStride
	}
	return nodes, 0
}

// TestLayout checks the promises of the package comment: which subtrees
// become nodes and which fringes, and how many reads an IPv4 lookup takes
// under a 16-bit root.
func TestLayout(t *testing.T) {
	pp := netip.MustParsePrefix
	for _, c := range []struct {
		prefix         string
		nodes, fringes int
	}{
		{"10.1.2.0/24", 1, 0},   // ends in the node below the root
		{"10.1.2.4/32", 0, 1},   // would need two nodes
		{"10.1.0.0/16", 0, 0},   // the root entry itself
		{"fd00:1:2::/48", 0, 1}, // would need four nodes
		{"fd00:1000::/20", 1, 0},
	} {
		b := Builder[int]{rootBits4: maxRootBits + 1, rootBits6: maxRootBits + 1}
		b.Insert(pp(c.prefix), 1)
		if s := b.Build().Stats(); s.Nodes != c.nodes || s.Fringes != c.fringes {
			t.Errorf("%s alone: %d nodes, %d fringes; want %d, %d", c.prefix, s.Nodes, s.Fringes, c.nodes, c.fringes)
		}
	}

	// Pod CIDRs, one /24 per node: the automatic root is byte-aligned, so
	// every /24 ends in the node below its /16.
	for _, c := range []struct{ n, rootBits, nodes int }{{200, 8, 2}, {5000, 16, 20}} {
		var b Builder[int]
		for i := range c.n {
			b.Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), i)
		}
		if s := b.Build().Stats(); s.RootBits4 != c.rootBits || s.Nodes != c.nodes || s.Fringes != 0 {
			t.Errorf("%d pod CIDRs: %+v; want root bits %d, %d nodes, no fringes", c.n, s, c.rootBits, c.nodes)
		}
	}

	// Random IPv4 tables, dense and sparse: a lookup reads the root and
	// then at most two nodes, or a node and a fringe.
	r := rand.New(rand.NewPCG(12, 13))
	for round := range 20 {
		g := &gen{r: r}
		b := Builder[int]{rootBits4: maxRootBits + 1}
		for range 50 + r.IntN(3000) {
			b.Insert(g.prefix(false), r.IntN(100))
		}
		tab := b.Build()
		for range 5000 {
			a := g.addr()
			if !a.Is4() {
				continue
			}
			x := a.As4()
			nodes, fringes := tab.v4.reads4(uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3]))
			if nodes+fringes > 2 {
				t.Fatalf("round %d: lookup of %s reads %d nodes and %d fringes after the root", round, a, nodes, fringes)
			}
		}
	}
}
