// Package neighbor maps an underlay next hop's IP address (another node,
// or the uplink's gateway) to the MAC address frames for it carry and the
// uplink they leave through. The fast path reads it for every frame it
// sends to a remote node, after tables/route has named the node and the
// agent has resolved the node to its underlay address.
//
// A [Table] is an immutable snapshot with a generation number, like
// tables/endpoint: the agent (one writer) builds one with [New] from what
// it learned (ARP/ND, the node list) and publishes it through an
// atomic.Pointer; workers load the pointer once per batch and look up
// without locks or allocation.
//
// Layout: one open-addressing hash table with linear probing for both
// families. A key is the 16-byte address as two words, IPv4 in its
// IPv4-mapped form (::ffff:a.b.c.d), so one probe loop serves both and
// [Table.Lookup] needs no branch on the family. A slot is 24 bytes (key,
// MAC, uplink), the table at most half full, the all-zero key (the
// unspecified address, never a neighbour) marks an empty slot. A hit costs
// one multiply and usually one cache line. Tables are small (one entry per
// node and gateway), so the hash is chosen for speed, not for resistance
// to chosen keys: the agent, not the network, decides what goes in.
package neighbor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
)

// Neighbor is how to reach one underlay next hop.
type Neighbor struct {
	MAC    [6]byte // destination MAC of frames sent to the neighbour
	Uplink uint16  // index of the uplink the frames leave through
}

type slot struct {
	hi, lo uint64 // the address; 0, 0 for an empty slot
	nb     Neighbor
}

// Table is an immutable snapshot of the neighbours.
type Table struct {
	gen   uint64
	slots []slot // a power of two, at least twice the entries
	shift uint8  // 64 - log2(len(slots))
	n     int
}

// mapped is the high word of the key's low half for IPv4 addresses.
const mapped = 0xffff << 32

// New builds a snapshot for generation gen. IPv4-mapped IPv6 addresses are
// the same neighbour as their IPv4 address.
func New(gen uint64, entries map[netip.Addr]Neighbor) (*Table, error) {
	size := max(2, 1<<bits.Len(uint(2*len(entries)-1)))
	t := &Table{gen: gen, slots: make([]slot, size), shift: uint8(64 - bits.TrailingZeros(uint(size)))}
	for a, nb := range entries {
		if !a.IsValid() || a.IsUnspecified() {
			return nil, fmt.Errorf("neighbor %v: %w", a, errAddr)
		}
		hi, lo := key(a)
		i := t.hash(hi, lo)
		for t.slots[i].hi|t.slots[i].lo != 0 {
			if t.slots[i].hi == hi && t.slots[i].lo == lo {
				return nil, fmt.Errorf("neighbor %v: %w", a.Unmap(), errDup)
			}
			i = (i + 1) & uint64(len(t.slots)-1)
		}
		t.slots[i] = slot{hi: hi, lo: lo, nb: nb}
		t.n++
	}
	return t, nil
}

var (
	errAddr = errors.New("not a neighbour address")
	errDup  = errors.New("given twice (IPv4 and IPv4-mapped, or with and without a zone)")
)

// Generation is the generation number the snapshot was built for.
func (t *Table) Generation() uint64 { return t.gen }

// Len is the number of neighbours.
func (t *Table) Len() int { return t.n }

// Lookup returns the neighbour with address a.
func (t *Table) Lookup(a netip.Addr) (Neighbor, bool) {
	b := a.AsSlice() // inlines, does not escape: see tables/lpm Lookup
	switch len(b) {
	case 4:
		return t.find(0, mapped|uint64(binary.BigEndian.Uint32(b)))
	case 16:
		return t.find(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16]))
	}
	return Neighbor{}, false
}

// Lookup4 returns the neighbour with IPv4 address a.
func (t *Table) Lookup4(a [4]byte) (Neighbor, bool) {
	return t.find(0, mapped|uint64(binary.BigEndian.Uint32(a[:])))
}

// find probes for the key hi:lo. The empty test comes first: a lookup of
// :: (0:0) must not match an empty slot.
func (t *Table) find(hi, lo uint64) (Neighbor, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.hash(hi, lo); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hi|s.lo == 0 {
			return Neighbor{}, false
		}
		if s.hi == hi && s.lo == lo {
			return s.nb, true
		}
	}
}

// hash folds the high word into the low one (node addresses differ mostly
// in their low bits) and keeps the top bits of a Fibonacci multiply.
func (t *Table) hash(hi, lo uint64) uint64 {
	return ((lo ^ bits.RotateLeft64(hi, 31)) * 0x9E3779B97F4A7C15) >> t.shift
}

// All returns every entry, for the control plane and tests. IPv4
// neighbours come back as IPv4 addresses.
func (t *Table) All() map[netip.Addr]Neighbor {
	m := make(map[netip.Addr]Neighbor, t.n)
	for _, s := range t.slots {
		if s.hi|s.lo == 0 {
			continue
		}
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], s.hi)
		binary.BigEndian.PutUint64(b[8:], s.lo)
		m[netip.AddrFrom16(b).Unmap()] = s.nb
	}
	return m
}

// key is a's 16-byte form as two words, IPv4 mapped.
func key(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}
