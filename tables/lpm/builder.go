package lpm

import (
	"errors"
	"math/bits"
	"net/netip"
	"slices"
)

// Builder is the writer's mutable set of prefixes. The zero Builder is
// empty and ready to use. It is not safe for concurrent use; the tables it
// builds are.
type Builder[V comparable] struct {
	m map[netip.Prefix]V // masked prefixes

	// rootBits4 and rootBits6, when not zero, force the root size to
	// 2^(rootBits-1) entries. Tests use them to cover every root size.
	rootBits4, rootBits6 int
}

var errInvalid = errors.New("lpm: invalid prefix")

// Insert adds prefix p (its host bits masked off) with value v, replacing
// the value p had. It fails only for an invalid prefix.
func (b *Builder[V]) Insert(p netip.Prefix, v V) error {
	if !p.IsValid() {
		return errInvalid
	}
	if b.m == nil {
		b.m = make(map[netip.Prefix]V)
	}
	b.m[p.Masked()] = v
	return nil
}

// Delete removes prefix p (masked) and reports whether it was there.
func (b *Builder[V]) Delete(p netip.Prefix) bool {
	p = p.Masked()
	if _, ok := b.m[p]; !ok {
		return false
	}
	delete(b.m, p)
	return true
}

// Get returns the value of exactly prefix p (masked).
func (b *Builder[V]) Get(p netip.Prefix) (V, bool) {
	v, ok := b.m[p.Masked()]
	return v, ok
}

// Len is the number of prefixes.
func (b *Builder[V]) Len() int { return len(b.m) }

// Build compiles the prefixes into a new immutable Table. The Builder stays
// usable: change it and Build again for the next snapshot. It takes
// O(n log n) time and allocates only the snapshot and a little scratch.
// It panics if the table would need more than 2^30 distinct values or
// arena words (4 GiB), far beyond any table the dataplane holds.
func (b *Builder[V]) Build() *Table[V] {
	// One list for both families, IPv4 filled from the front and IPv6 from
	// the back. Until the values are numbered, val is the index in raw.
	n := len(b.m)
	list, raw := make([]pfx, n), make([]V, n)
	i4, i6 := 0, n
	for p, v := range b.m {
		k, _ := key(p)
		i := i4
		if p.Addr().Is4() {
			i4++
		} else {
			i6--
			i = i6
		}
		k.val, raw[i] = uint32(i), v
		list[i] = k
	}
	t := &Table[V]{vals: []V{*new(V)}, p4: list[:i4:i4], p6: list[i4:]}
	slices.SortFunc(t.p4, cmpPfx)
	slices.SortFunc(t.p6, cmpPfx)

	// Number the distinct values in prefix order, so that equal inputs give
	// identical snapshots.
	index := make(map[V]uint32)
	for i := range list {
		v := raw[list[i].val]
		j, ok := index[v]
		if !ok {
			if len(t.vals) >= maxValues {
				panic("lpm: more than 2^30 distinct values")
			}
			j = uint32(len(t.vals))
			t.vals = append(t.vals, v)
			index[v] = j
		}
		list[i].val = j
	}
	t.vals = slices.Clip(t.vals)

	t.v4 = buildTrie(t.p4, true, rootBits(len(t.p4), b.rootBits4))
	t.v6 = buildTrie(t.p6, false, rootBits(len(t.p6), b.rootBits6))
	return t
}

// rootBits picks the root size for n prefixes: a multiple of the node
// stride, so that /8, /16, /24 and /48 prefixes end on node boundaries;
// 16 bits (256 KiB) from bigRoot prefixes on, 8 bits (1 KiB) below, so
// that small tables stay small, none for an empty family.
func rootBits(n, force int) int {
	switch {
	case force > 0:
		return force - 1
	case n >= bigRoot:
		return 16
	case n > 0:
		return 8
	}
	return 0
}

// bigRoot is the number of prefixes from which a table gets a 16-bit root.
const bigRoot = 1024

// trieBuilder lays out one family's arena.
type trieBuilder struct {
	a       []uint32
	is4     bool
	nodes   int32
	fringes int32

	// Scratch stacks for the nodes being built, deepest last.
	runs []run
	kids []kid
}

// buildTrie lays out the sorted prefixes of one family.
func buildTrie(ps []pfx, is4 bool, r int) trie {
	b := trieBuilder{is4: is4}
	// About 12 words per prefix for random tables, fewer for dense ones;
	// the arena grows if that is too few.
	b.a = make([]uint32, 1<<r, 1<<r+12*len(ps))
	b.paint(b.a[:1<<r], 0, r, ps)
	forGroups(ps, 0, r, func(s int, g []pfx) {
		e := b.child(r, b.a[s], g)
		b.a[s] = e
	})
	// The snapshot may live long: copy it into an exact-size arena if the
	// estimate wasted much.
	a := b.a
	if cap(a)-len(a) > len(a)/8 {
		a = slices.Clone(a)
	}
	return trie{a: a, rootBits: uint8(r), nodes: b.nodes, fringes: b.fringes}
}

// alloc appends n zero words at an offset aligned to align words and
// returns the offset.
func (b *trieBuilder) alloc(n, align int) uint32 {
	o := (len(b.a) + align - 1) &^ (align - 1)
	if o+n > offMask {
		panic("lpm: table too large")
	}
	old := len(b.a)
	b.a = slices.Grow(b.a, o+n-old)[:o+n]
	clear(b.a[old:])
	return uint32(o)
}

// paint sets each of the 1<<w slots at bit offset off to the value of the
// longest prefix in ps that covers the whole slot. The slots start with
// the value inherited from above; ps, sorted, lie inside this level's
// range. In sorted order a prefix comes before every prefix inside it, so
// painting in order leaves the longest on top.
func (b *trieBuilder) paint(slots []uint32, off, w int, ps []pfx) {
	end := off + w
	for _, p := range ps {
		if int(p.bits) > end {
			continue
		}
		s := chunk(p, off, w)
		n := 1 << (end - int(p.bits))
		for i := s; i < s+n; i++ {
			slots[i] = p.val
		}
	}
}

// forGroups calls f for each slot of the level at off, w holding prefixes
// longer than the level, with those prefixes, in slot order. In sorted
// order they are contiguous: a prefix ending at this level that covers the
// slot sorts before all of them.
func forGroups(ps []pfx, off, w int, f func(slot int, g []pfx)) {
	end := off + w
	for i := 0; i < len(ps); {
		if int(ps[i].bits) <= end {
			i++
			continue
		}
		s := chunk(ps[i], off, w)
		j := i + 1
		for j < len(ps) && chunk(ps[j], off, w) == s {
			j++
		}
		f(s, ps[i:j])
		i = j
	}
}

// child lays out what a slot at bit offset off leads to, the prefixes ps
// longer than off inside it, and returns the slot's entry. inh is the value
// of the slot itself, which every address not matched further down gets.
//
// A single prefix becomes a fringe, unless it ends within the next 8 bits:
// then one node resolves it in the same one cache line, and the reader is
// spared a branch between node and fringe that it would mispredict half
// the time (most of a random IPv4 table is /24s under a 16-bit root).
func (b *trieBuilder) child(off int, inh uint32, ps []pfx) uint32 {
	if len(ps) == 1 && int(ps[0].bits) > off+nodeStride {
		return b.fringe(ps[0], inh)
	}
	// The prefixes ending in this node cover ranges of its 256 slots; in
	// sorted order those ranges are nested or disjoint and come outer
	// first, and a slot with a subtree comes after the ranges around it.
	// One sweep with a stack of open ranges turns them into runs, kept on
	// the builder's scratch stacks above those of the nodes being built.
	type open struct {
		end int
		val uint32
	}
	var stack [nodeStride + 1]open // nested ranges, at most one per length
	depth := 0
	cur := func() uint32 {
		if depth == 0 {
			return inh
		}
		return stack[depth-1].val
	}
	rbase, kbase := len(b.runs), len(b.kids)
	closeTo := func(pos int) {
		for depth > 0 && stack[depth-1].end <= pos {
			depth--
			b.setRun(rbase, stack[depth].end, cur(), -1)
		}
	}
	end := off + nodeStride
	b.setRun(rbase, 0, inh, -1)
	for i := 0; i < len(ps); {
		p := ps[i]
		s := chunk(p, off, nodeStride)
		closeTo(s)
		if int(p.bits) <= end {
			stack[depth] = open{s + 1<<(end-int(p.bits)), p.val}
			depth++
			b.setRun(rbase, s, p.val, -1)
			i++
			continue
		}
		j := i + 1
		for j < len(ps) && chunk(ps[j], off, nodeStride) == s {
			j++
		}
		b.setRun(rbase, s, 0, int32(len(b.kids)))
		b.kids = append(b.kids, kid{cur(), ps[i:j]})
		b.setRun(rbase, s+1, cur(), -1)
		i = j
	}
	closeTo(1 << nodeStride)

	nruns := len(b.runs) - rbase
	o := b.alloc(nodeHeader+nruns, nodeAlign)
	b.nodes++
	n := b.a[o : o+nodeHeader+uint32(nruns)]
	for r, run := range b.runs[rbase:] {
		s := int(run.start)
		n[s>>5] |= 1 << (s & 31)
		n[nodeHeader+r] = run.val
	}
	before := 0
	for w := range 8 {
		n[8+w>>2] |= uint32(before) << (8 * (w & 3))
		before += bits.OnesCount32(n[w])
	}
	// The subtrees go after the node. b.a, b.runs and b.kids may move as
	// they grow: index them afresh.
	for r := range nruns {
		if k := b.runs[rbase+r].kid; k >= 0 {
			e := b.child(end, b.kids[k].inh, b.kids[k].ps)
			b.a[o+nodeHeader+uint32(r)] = e
		}
	}
	b.runs, b.kids = b.runs[:rbase], b.kids[:kbase]
	return tagNode | o
}

// run is a node's run of equal slots being built: from slot start on, the
// value val or, if kid >= 0, the subtree b.kids[kid].
type run struct {
	start uint16
	kid   int32
	val   uint32
}

// kid is a subtree being built: its prefixes and the value it inherits.
type kid struct {
	inh uint32
	ps  []pfx
}

// setRun makes the slots from pos on hold val, or subtree kid if kid >= 0,
// until the next call, in the runs above rbase. Calls come in slot order;
// a later call at the same slot wins, and a value equal to the run before
// extends that run.
func (b *trieBuilder) setRun(rbase, pos int, val uint32, kid int32) {
	if pos >= 1<<nodeStride {
		return
	}
	rs := b.runs[rbase:]
	if n := len(rs); n > 0 && int(rs[n-1].start) == pos {
		b.runs = b.runs[:len(b.runs)-1]
		rs = rs[:n-1]
	}
	if n := len(rs); n > 0 && kid < 0 && rs[n-1].kid < 0 && rs[n-1].val == val {
		return
	}
	b.runs = append(b.runs, run{uint16(pos), kid, val})
}

// fringe lays out a fringe for prefix p in a subtree whose other addresses
// get inh, and returns its entry.
func (b *trieBuilder) fringe(p pfx, inh uint32) uint32 {
	b.fringes++
	if b.is4 {
		o := b.alloc(fringe4Words, fringe4Words)
		copy(b.a[o:], []uint32{uint32(p.hi >> 32), ^(^uint32(0) >> p.bits), p.val, inh})
		return tagFringe | o
	}
	o := b.alloc(fringe6Words, 8)
	copy(b.a[o:], []uint32{uint32(p.hi >> 32), uint32(p.hi), uint32(p.lo >> 32), uint32(p.lo), uint32(p.bits), p.val, inh})
	return tagFringe | o
}

// chunk returns the w bits of p's address at bit offset off (bits past the
// end of the address read as zero).
func chunk(p pfx, off, w int) int {
	var hi uint64
	if off < 64 {
		hi = p.hi<<off | p.lo>>(64-off)
	} else {
		hi = p.lo << (off - 64)
	}
	return int(hi >> (64 - w))
}
