package policy

import (
	"net/netip"
	"slices"

	"github.com/ringnet/ringnet/tables/lpm"
)

// CIDR identities.
//
// Every prefix that appears in an ipBlock (a CIDR or an except) of the
// input gets a CIDR identity, 1 upwards, and the table keeps a
// longest-prefix-match index from prefix to identity. Which blocks contain
// an address depends only on its longest matching prefix p: the prefixes
// of the input that contain the address form a chain, and all of them
// contain p, so "in CIDR and in no Except" has the same answer for the
// address as for p. The compiler therefore works out, once per build, the
// CIDR identities each block matches, and writes rule entries for those
// identities exactly as it does for pod identities. A packet's address
// costs one LPM lookup (Table.CIDR, tables/lpm) and its verdict then one
// more hash probe.

// newCIDRIndex builds the longest-prefix-match table from prefix to CIDR
// identity.
func newCIDRIndex(ids map[netip.Prefix]uint32) *lpm.Table[uint32] {
	var b lpm.Builder[uint32]
	for p, id := range ids {
		if err := b.Insert(p, id); err != nil {
			panic(err) // Build checked every prefix
		}
	}
	return b.Build()
}

// cidrSpace numbers the prefixes of the input and knows which CIDR
// identities each ipBlock matches. It lives only while a table is built.
type cidrSpace struct {
	ids      map[netip.Prefix]uint32 // masked prefix to CIDR identity
	prefixes []netip.Prefix          // by identity - 1
	within   map[uint32][]uint32     // identity q to the identities p with q ⊇ p, q included
	blocks   map[string][]uint32     // memo: block key to matched identities
}

func newCIDRSpace(policies []Policy) *cidrSpace {
	set := map[netip.Prefix]bool{}
	for i := range policies {
		for _, d := range []Direction{Ingress, Egress} {
			for _, r := range policies[i].rules(d) {
				for _, pe := range r.Peers {
					if !pe.CIDR.IsValid() {
						continue
					}
					set[pe.CIDR.Masked()] = true
					for _, e := range pe.Except {
						set[e.Masked()] = true
					}
				}
			}
		}
	}
	cs := &cidrSpace{ids: make(map[netip.Prefix]uint32, len(set)), within: map[uint32][]uint32{}, blocks: map[string][]uint32{}}
	// Number in a fixed order, so that equal inputs give equal tables.
	for p := range set {
		cs.prefixes = append(cs.prefixes, p)
	}
	slices.SortFunc(cs.prefixes, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	for i, p := range cs.prefixes {
		cs.ids[p] = uint32(i + 1)
	}
	for i, p := range cs.prefixes {
		id := uint32(i + 1)
		for bits := p.Bits(); bits >= 0; bits-- {
			q, _ := p.Addr().Prefix(bits)
			if qid, ok := cs.ids[q]; ok {
				cs.within[qid] = append(cs.within[qid], id)
			}
		}
	}
	return cs
}

// match returns the CIDR identities whose addresses are in pe's CIDR and
// in none of its excepts.
func (cs *cidrSpace) match(pe *Peer) []uint32 {
	c := pe.CIDR.Masked()
	key := make([]byte, 0, 18*(1+len(pe.Except)))
	key, _ = c.AppendBinary(key)
	excepts := make([]netip.Prefix, len(pe.Except))
	for i, e := range pe.Except {
		excepts[i] = e.Masked()
		key, _ = excepts[i].AppendBinary(key)
	}
	if m, ok := cs.blocks[string(key)]; ok {
		return m
	}
	var m []uint32
	for _, id := range cs.within[cs.ids[c]] {
		p := cs.prefixes[id-1]
		if !slices.ContainsFunc(excepts, func(e netip.Prefix) bool { return contains(e, p) }) {
			m = append(m, id)
		}
	}
	cs.blocks[string(key)] = m
	return m
}

// contains reports whether prefix q contains prefix p.
func contains(q, p netip.Prefix) bool {
	return q.Bits() <= p.Bits() && q.Contains(p.Addr())
}
