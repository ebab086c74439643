// Package lpm is an immutable longest-prefix-match table for IPv4 and IPv6:
// prefix -> small value, looked up by address on every packet. The route
// table (tables/route) is built on it, and the policy table can use it for
// ipBlocks: an ipBlock with except is two prefixes with two values (the
// block, and each except as "not in block"), and the longest match decides.
// A lookup returns one value, so for overlapping blocks of several rules
// the writer stores per prefix what applies there (a bitmask of blocks,
// say), computed from all prefixes that contain it.
//
// # Model
//
// A [Builder] is the writer's mutable set of prefixes (a map, cheap to
// change). [Builder.Build] compiles it into a [Table], which never changes
// afterwards: publish it through an atomic.Pointer and let any number of
// goroutines read it without locks. Lookups ([Table.Lookup] and its IPv4
// fast path [Table.Lookup4]) do not allocate and read only the table's
// flat arrays. The control-plane reads ([Table.Get],
// [Table.LookupPrefix], [Table.All]) use a sorted copy of the prefixes
// kept in the snapshot; [Table.Builder] starts the next snapshot from it.
// The value type V should be small and comparable (an index, a flag, a
// struct of a few integers): values are deduplicated with a map.
//
// IPv4 and IPv6 are separate tries. An IPv4-mapped IPv6 address or prefix
// (::ffff:a.b.c.d) is IPv6 here, as in net/netip; callers that want it
// treated as IPv4 call Unmap first.
//
// # Layout
//
// Each family is one flat []uint32, the arena, holding a multibit trie:
//
//   - Values are deduplicated at build time. The trie stores a value index
//     (0 means no match) and the table keeps the distinct values in one
//     []V. A route table has few distinct next hops, so that array is small
//     and stays in cache, and neighbouring prefixes with equal values merge.
//   - The root is 2^R entries indexed by the top R bits of the address:
//     R = 16 from 1024 prefixes on, 8 below (0 for an empty family), so a
//     ten-prefix policy table costs about a kilobyte, not 256 KiB, and
//     byte-aligned prefixes (/8, /16, /24, /48) end on node boundaries.
//     An entry is a value index, a node or a fringe (2 tag bits).
//   - A node resolves the next 8 bits: 256 slots, stored as the runs of
//     equal entries they form. Eight bitmap words mark where runs start,
//     two words count the starts before each bitmap word, and one entry per
//     run follows. Slot s's entry is found with one popcount: entry number
//     count[s/32] + popcount(bitmap[s/32] up to s) - 1. Nodes start on a
//     64-byte boundary, so the bitmap, the counts and the first six entries
//     share one cache line. A prefix ending inside a node covers a range of
//     slots (leaf pushing), so that one entry answers the whole range.
//   - A subtree holding a single prefix that does not end within the next
//     node is a fringe: the prefix and two entries, for inside and outside
//     it (4 words for IPv4, 7 for IPv6). Without fringes a random /48
//     would cost a chain of four nodes.
//
// A lookup reads the root entry, then one cache line per node, and ends on
// a value or a fringe. For IPv4 under a 16-bit root that is at most root,
// node, node (or fringe): a /24 is root and one node. For IPv6, random and
// real tables branch near the top, so a /48 is typically root, node,
// fringe; the worst case is 15 nodes. The only branches are the walk's.
//
// # Memory
//
// Measured on the route benchmarks' 100k random routes (mostly /24, or
// /48 for IPv6): 75 bytes per route for either family, heap included.
// 24 of those are the sorted prefix list, the control plane's copy; about
// 48 are the trie: for IPv4 0.58 nodes of about 77 bytes per route plus
// the 256 KiB root, for IPv6 one 32-byte fringe per route plus 0.12 nodes
// of about 140 bytes. bart.Table holds the same routes in 77 (IPv4) and
// 83 (IPv6) bytes per route, bart.Fast in 157 and 112. Real tables are
// denser and cost less per route: 200 /24 pod CIDRs in one /16 take
// 6.7 KB, 5,000 take 400 KB, most of it the 256 KiB root. A rebuild
// allocates about 1.2 times the snapshot it makes (84 bytes per route
// for the 100k IPv4 table, 18 ms).
//
// # Why this layout
//
// DIR-24-8 answers most IPv4 lookups with one read, but that read lands at
// a random place in a 32-64 MiB array: a cache and TLB miss nearly every
// time, 32-64 MiB rebuilt per change and held twice while readers drain
// the old snapshot, and IPv6 needs something else anyway. A 16-8-8 split
// with plain 256-entry nodes needs a 1 KiB node for nearly every /16 that
// holds a longer prefix, 60 MiB for 100k random /24s. Compressing those
// nodes into runs keeps DIR-16-8-8's short walk (at most three reads for
// IPv4) in about 7 MiB, which stays in the last-level cache. A Poptrie-
// style node (6-bit strides, 64-bit bitmaps, separate leaf array) was
// tried first: more levels and a leaf read per lookup made it 50% slower
// on IPv4. Binary search on prefix lengths (Waldvogel) needs markers,
// precomputed best matches and 4-7 hash probes for IPv6, each a likely
// cache miss at a random address, while the trie's upper levels are shared
// by all lookups and stay hot.
package lpm

import (
	"encoding/binary"
	"iter"
	"math/bits"
	"net/netip"
	"slices"
)

// A trie is one flat []uint32, the arena. Its first 2^rootBits words are
// the root; nodes and fringes follow. Every slot of the root or of a node
// holds an entry:
//
//	00vvvvvv...  value index v (0: no match)
//	10oooooo...  a node at arena offset o
//	11oooooo...  a fringe at arena offset o
const (
	tagNode   = 2 << 30
	tagFringe = 3 << 30
	offMask   = 1<<30 - 1
	// maxValues bounds the value indexes, which must stay below the tags.
	maxValues = 1 << 30
)

// A node covers the next 8 bits of the address: 256 slots, stored as the
// runs of equal entries they form.
//
//	words 0-7    bit s&31 of word s>>5 is set if a run starts at slot s
//	words 8-9    byte w (w = 0..7) counts the run starts in words before w
//	words 10...  one entry per run
//
// A node starts on a 64-byte boundary, so its bitmap, counts and first six
// runs share one cache line.
const (
	nodeStride = 8
	nodeHeader = 10
	nodeAlign  = 16 // words
)

// A fringe stands for a subtree that holds a single prefix.
//
//	IPv4  key, mask, entry if inside, entry if not (4 words)
//	IPv6  key as four words, length, entry if inside, entry if not (7 words)
const (
	fringe4Words = 4
	fringe6Words = 7
)

// maxRootBits bounds the root: 2^16 entries, 256 KiB.
const maxRootBits = 16

// trie is one address family's lookup structure.
type trie struct {
	a        []uint32 // the arena
	rootBits uint8
	nodes    int32 // for Stats
	fringes  int32
}

// pfx is a stored prefix in the snapshot's sorted list, for both families:
// an IPv4 prefix sits in the top 32 bits of hi.
type pfx struct {
	hi, lo uint64
	bits   uint8
	val    uint32 // value index, >= 1
}

// Table is an immutable longest-prefix-match snapshot. Build one with
// [Builder.Build]; the zero Table is not usable.
type Table[V comparable] struct {
	v4, v6 trie
	vals   []V   // by value index; vals[0] is the zero V, returned for no match
	p4, p6 []pfx // sorted by address, then length
}

// Lookup returns the value of the longest prefix containing a. The
// invalid Addr matches nothing; a zone is ignored.
func (t *Table[V]) Lookup(a netip.Addr) (V, bool) {
	var i uint32
	if a.Is4() {
		i = t.v4.find4(a.As4())
	} else if b := a.AsSlice(); len(b) == 16 {
		// AsSlice inlines and does not escape. As16 would be copied out of
		// its result with one 16-byte move, which the CPU cannot forward
		// from the two 8-byte stores that wrote it: the load then waits
		// for every older instruction to retire, lookups stop overlapping,
		// and a big table's IPv6 lookup costs twice as much.
		i = t.v6.find6((*[16]byte)(b))
	}
	return t.vals[i], i != 0
}

// Lookup4 returns the value of the longest IPv4 prefix containing a.
func (t *Table[V]) Lookup4(a [4]byte) (V, bool) {
	i := t.v4.find4(a)
	return t.vals[i], i != 0
}

// find4 returns the value index for an IPv4 address.
func (tr *trie) find4(addr [4]byte) uint32 {
	x := binary.BigEndian.Uint32(addr[:])
	a, r := tr.a, tr.rootBits
	e := a[x>>(32-r)]
	k := x << r // the bits below the root, left-aligned
	for e >= tagNode {
		o := e & offMask
		if e >= tagFringe {
			f := a[o : o+fringe4Words : o+fringe4Words]
			e = f[3]
			if (x^f[0])&f[1] == 0 {
				e = f[2]
			}
			return e
		}
		e = slot(a, o, k>>24)
		k <<= nodeStride
	}
	return e
}

// find6 returns the value index for an IPv6 address. It reads the
// address as two words, in place.
func (tr *trie) find6(addr *[16]byte) uint32 {
	hi, lo := binary.BigEndian.Uint64(addr[:8]), binary.BigEndian.Uint64(addr[8:])
	a, r := tr.a, tr.rootBits
	e := a[hi>>(64-r)]
	khi, klo := hi<<r|lo>>(64-r), lo<<r // the bits below the root, left-aligned
	for e >= tagNode {
		o := e & offMask
		if e >= tagFringe {
			f := a[o : o+fringe6Words : o+fringe6Words]
			e = f[6]
			if in6(hi, lo, uint64(f[0])<<32|uint64(f[1]), uint64(f[2])<<32|uint64(f[3]), f[4]) {
				e = f[5]
			}
			return e
		}
		e = slot(a, o, uint32(khi>>56))
		khi, klo = khi<<nodeStride|klo>>(64-nodeStride), klo<<nodeStride
	}
	return e
}

// slot returns the entry of slot s (0-255) of the node at offset o: the
// entry of the run that holds s, which is the last run starting at or
// before s.
func slot(a []uint32, o, s uint32) uint32 {
	starts := a[o+s>>5] & (2<<(s&31) - 1) // run starts in s's word, up to s
	before := a[o+8+s>>7] >> (s >> 2 & 24) & 0xff
	return a[o+nodeHeader-1+before+uint32(bits.OnesCount32(starts))]
}

// in6 reports whether hi:lo is inside the prefix phi:plo/plen (1-128),
// without a branch on plen: a shift by 64 or more yields 0 in Go.
func in6(hi, lo, phi, plo uint64, plen uint32) bool {
	mhi := ^(^uint64(0) >> plen)
	mlo := ^uint64(0) << (128 - plen)
	return (hi^phi)&mhi|(lo^plo)&mlo == 0
}

// Len is the number of prefixes, both families.
func (t *Table[V]) Len() int { return len(t.p4) + len(t.p6) }

// Get returns the value stored for exactly prefix p (masked first).
func (t *Table[V]) Get(p netip.Prefix) (V, bool) {
	k, ok := key(p)
	if !ok {
		var zero V
		return zero, false
	}
	list := t.p6
	if p.Addr().Is4() {
		list = t.p4
	}
	if i, ok := slices.BinarySearchFunc(list, k, cmpPfx); ok {
		return t.vals[list[i].val], true
	}
	var zero V
	return zero, false
}

// LookupPrefix returns the longest stored prefix that contains all of p,
// and its value. It is for the control plane: up to 33 or 129 binary
// searches, no allocation.
func (t *Table[V]) LookupPrefix(p netip.Prefix) (netip.Prefix, V, bool) {
	if p.IsValid() {
		for b := p.Bits(); b >= 0; b-- {
			q, _ := p.Addr().Prefix(b)
			if v, ok := t.Get(q); ok {
				return q, v, true
			}
		}
	}
	var zero V
	return netip.Prefix{}, zero, false
}

// All yields every prefix and its value: IPv4 first, each family sorted by
// address, then by length.
func (t *Table[V]) All() iter.Seq2[netip.Prefix, V] {
	return func(yield func(netip.Prefix, V) bool) {
		for _, p := range t.p4 {
			if !yield(p.prefix4(), t.vals[p.val]) {
				return
			}
		}
		for _, p := range t.p6 {
			if !yield(p.prefix6(), t.vals[p.val]) {
				return
			}
		}
	}
}

// Stats describes a snapshot's size, for metrics and capacity planning.
type Stats struct {
	Prefixes4, Prefixes6 int
	RootBits4, RootBits6 int // the roots have 2^RootBits entries
	Nodes                int // 256-slot nodes
	Fringes              int // single-prefix subtrees
	Values               int // distinct values, including the zero "no match"
	// Bytes is the memory the snapshot holds in its arenas and its sorted
	// prefix list, the value array excluded (its element size is the
	// caller's to know).
	Bytes int
}

// Stats returns the snapshot's sizes.
func (t *Table[V]) Stats() Stats {
	const pfxSize = 24
	return Stats{
		Prefixes4: len(t.p4), Prefixes6: len(t.p6),
		RootBits4: int(t.v4.rootBits), RootBits6: int(t.v6.rootBits),
		Nodes:   int(t.v4.nodes + t.v6.nodes),
		Fringes: int(t.v4.fringes + t.v6.fringes),
		Values:  len(t.vals),
		Bytes:   4*(len(t.v4.a)+len(t.v6.a)) + pfxSize*(len(t.p4)+len(t.p6)),
	}
}

// Builder returns a new Builder holding this snapshot's prefixes, to make
// the next snapshot from.
func (t *Table[V]) Builder() *Builder[V] {
	b := &Builder[V]{m: make(map[netip.Prefix]V, t.Len())}
	for p, v := range t.All() {
		b.m[p] = v
	}
	return b
}

// key converts a valid prefix to its masked pfx form (val unset).
func key(p netip.Prefix) (pfx, bool) {
	if !p.IsValid() {
		return pfx{}, false
	}
	p = p.Masked()
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		return pfx{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32, bits: uint8(p.Bits())}, true
	}
	b := a.As16()
	return pfx{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: uint8(p.Bits())}, true
}

func (p pfx) prefix4() netip.Prefix {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(p.hi>>32))
	return netip.PrefixFrom(netip.AddrFrom4(b), int(p.bits))
}

func (p pfx) prefix6() netip.Prefix {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], p.hi)
	binary.BigEndian.PutUint64(b[8:], p.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(p.bits))
}

// cmpPfx orders prefixes by address, then by length: a prefix sorts before
// every prefix it contains.
func cmpPfx(a, b pfx) int {
	switch {
	case a.hi != b.hi:
		return cmpU64(a.hi, b.hi)
	case a.lo != b.lo:
		return cmpU64(a.lo, b.lo)
	}
	return int(a.bits) - int(b.bits)
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}
