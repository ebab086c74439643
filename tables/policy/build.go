package policy

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// Build compiles policies into the snapshot for generation gen. It does
// not keep or change policies.
func Build(gen uint64, policies []Policy) (*Table, error) {
	for i := range policies {
		if err := policies[i].validate(); err != nil {
			return nil, fmt.Errorf("policy %q: %w", policies[i].Name, err)
		}
	}
	b := builder{cidrs: newCIDRSpace(policies), groupIndex: map[string]uint32{}}

	// Which policies select each local identity, per direction.
	type selection [2][]int32 // by Direction: policy indexes, ascending
	selected := map[uint32]*selection{}
	for i := range policies {
		p := &policies[i]
		for _, d := range []Direction{Ingress, Egress} {
			if !p.applies(d) {
				continue
			}
			for _, id := range p.Selected {
				s := selected[id]
				if s == nil {
					s = &selection{}
					selected[id] = s
				}
				if l := s[d]; len(l) == 0 || l[len(l)-1] != int32(i) {
					s[d] = append(l, int32(i))
				}
			}
		}
	}

	t := &Table{gen: gen, nCIDRs: len(b.cidrs.prefixes)}
	size := tableSize(len(selected))
	t.locals = make([]localSlot, size)
	t.lshift = uint8(64 - bits.TrailingZeros(uint(size)))
	ids := make([]uint32, 0, len(selected))
	for id := range selected {
		ids = append(ids, id)
	}
	slices.Sort(ids) // so that equal inputs give equal tables
	for _, id := range ids {
		s := selected[id]
		slot := localSlot{id: id, used: true}
		for d, pols := range s {
			if len(pols) > 0 {
				slot.group[d] = b.group(policies, Direction(d), pols)
			}
		}
		i := hashLocal(id, t.lshift)
		for t.locals[i].used {
			i = (i + 1) & uint64(size-1)
		}
		t.locals[i] = slot
	}

	t.groups = b.groups
	size = tableSize(len(b.entries))
	t.entries = make([]entry, size)
	t.eshift = uint8(64 - bits.TrailingZeros(uint(size)))
	for _, e := range b.entries {
		i := hashEntry(e.group, e.peer, e.tag, t.eshift)
		for t.entries[i].group != 0 {
			i = (i + 1) & uint64(size-1)
		}
		t.entries[i] = e
	}
	t.bitmaps = b.bitmaps.words
	t.cidrs = newCIDRIndex(b.cidrs.ids)
	return t, nil
}

// builder holds what one Build accumulates.
type builder struct {
	cidrs      *cidrSpace
	groupIndex map[string]uint32 // direction and policy indexes to group number
	groups     []group
	entries    []entry
	bitmaps    bitmapSet
	grants     []grant     // scratch for one group
	ranges     []portRange // scratch for one entry
}

// grant is one port range allowed to one peer for one protocol class,
// while a group is compiled. key sorts grants by peer, class and range.
type grant struct {
	key uint64 // id<<35 | kind<<34 | class<<32 | lo<<16 | hi
}

func newGrant(kind uint8, id uint32, class uint8, r portRange) grant {
	return grant{uint64(id)<<35 | uint64(kind)<<34 | uint64(class)<<32 | uint64(r.lo)<<16 | uint64(r.hi)}
}

func (g grant) peer() (kind uint8, id uint32) { return uint8(g.key>>34) & 1, uint32(g.key >> 35) }
func (g grant) class() uint8                  { return uint8(g.key>>32) & 3 }
func (g grant) span() portRange               { return portRange{uint16(g.key >> 16), uint16(g.key)} }

// group returns the number of the group for the policies pols (indexes
// into policies) in direction d, compiling it the first time.
func (b *builder) group(policies []Policy, d Direction, pols []int32) uint32 {
	key := make([]byte, 1, 1+4*len(pols))
	key[0] = byte(d)
	for _, p := range pols {
		key = binary.LittleEndian.AppendUint32(key, uint32(p))
	}
	if g, ok := b.groupIndex[string(key)]; ok {
		return g
	}

	// Every (peer, class, range) the rules allow, and apart from them the
	// ranges allowed to every peer.
	var wild [nClasses][]portRange
	grants := b.grants[:0]
	allow := func(kind uint8, id uint32, ports []Port) {
		if len(ports) == 0 {
			for c := range uint8(nClasses) {
				grants = append(grants, newGrant(kind, id, c, portRange{0, 0xffff}))
			}
			return
		}
		for _, po := range ports {
			grants = append(grants, newGrant(kind, id, classOf(po.Proto), po.span()))
		}
	}
	for _, pi := range pols {
		for _, r := range policies[pi].rules(d) {
			if len(r.Peers) == 0 {
				addPorts(&wild, r.Ports)
				continue
			}
			for i := range r.Peers {
				pe := &r.Peers[i]
				if pe.CIDR.IsValid() {
					for _, id := range b.cidrs.match(pe) {
						allow(kindCIDR, id, r.Ports)
					}
					continue
				}
				for _, id := range pe.Identities {
					allow(kindPod, id, r.Ports)
				}
			}
		}
	}

	g := group{}
	for c := range wild {
		wild[c] = normalize(wild[c])
		g.any[c] = b.bitmaps.make(wild[c])
	}
	b.groups = append(b.groups, g)
	num := uint32(len(b.groups))
	b.groupIndex[string(key)] = num

	// One entry per (peer, class) that has grants: its ranges and the
	// wildcard's. A class without grants is left to the wildcard set.
	slices.SortFunc(grants, func(x, y grant) int { return cmp.Compare(x.key, y.key) })
	for i := 0; i < len(grants); {
		run := grants[i].key >> 32 // peer and class
		rs := b.ranges[:0]
		for ; i < len(grants) && grants[i].key>>32 == run; i++ {
			rs = append(rs, grants[i].span())
		}
		c := grants[i-1].class()
		rs = normalize(append(rs, wild[c]...))
		kind, id := grants[i-1].peer()
		b.entries = append(b.entries, entry{group: num, peer: id, tag: c | kind<<2, ports: b.bitmaps.make(rs)})
		b.ranges = rs
	}
	b.grants = grants
	return num
}

// addPorts adds the ports of one rule to cr.
func addPorts(cr *[nClasses][]portRange, ports []Port) {
	if len(ports) == 0 {
		for c := range cr {
			cr[c] = append(cr[c], portRange{0, 0xffff})
		}
		return
	}
	for _, po := range ports {
		c := classOf(po.Proto)
		cr[c] = append(cr[c], po.span())
	}
}
