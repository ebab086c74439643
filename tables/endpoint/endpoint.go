// Package endpoint maps a local pod's IP address to its port, MAC and
// security identity: the first table the fast path reads for every frame.
//
// A [Table] is an immutable snapshot. The agent (one writer) builds a new one
// with [New] and publishes it through an atomic.Pointer; workers load the
// pointer once per batch and look up without locks. Each snapshot carries the
// generation number it was built for, so a worker can say which version it
// used.
//
// Layout: two open-addressing hash tables with linear probing, one keyed by
// the IPv4 address as a uint32 and one by the IPv6 address as two uint64s,
// each at most half full, slots holding key and value side by side so that a
// hit costs one multiply and usually one cache line. A Go map keyed by
// netip.Addr costs about three times as much per lookup (hashing a 24-byte
// key with an interned-zone pointer) and cannot be sized for the load factor.
// Lookup allocates nothing.
package endpoint

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
)

// Endpoint is what the fast path needs to deliver a frame to a local pod
// and to decide its policy.
type Endpoint struct {
	Port uint16  // index of the pod's port in the dataplane's port set
	MAC  [6]byte // the pod's MAC, the destination MAC of delivered frames
	// Identity is the compact ID the agent gives the pod's namespace and
	// label set; pods with equal identities are selected by the same
	// policies. It is the key of the policy table (tables/policy). Zero
	// means none assigned.
	Identity uint32
}

type slot4 struct {
	key  uint32
	used bool
	ep   Endpoint
}

type slot6 struct {
	hi, lo uint64
	used   bool
	ep     Endpoint
}

// Table is an immutable snapshot of the local endpoints.
type Table struct {
	gen    uint64
	v4     []slot4
	v6     []slot6
	shift4 uint8 // 32 - log2(len(v4))
	shift6 uint8 // 64 - log2(len(v6))
	n      int
}

// New builds a snapshot for generation gen. Addresses must be IPv4 or IPv6
// (IPv4-mapped IPv6 addresses are stored as IPv4).
func New(gen uint64, entries map[netip.Addr]Endpoint) (*Table, error) {
	var n4, n6 int
	for a := range entries {
		switch {
		case !a.IsValid():
			return nil, fmt.Errorf("endpoint table: invalid address")
		case a.Unmap().Is4():
			n4++
		default:
			n6++
		}
	}
	t := &Table{gen: gen, n: len(entries)}
	size4, size6 := tableSize(n4), tableSize(n6)
	t.v4, t.v6 = make([]slot4, size4), make([]slot6, size6)
	t.shift4 = uint8(32 - bits.TrailingZeros(uint(size4)))
	t.shift6 = uint8(64 - bits.TrailingZeros(uint(size6)))
	for a, ep := range entries {
		a = a.Unmap()
		if a.Is4() {
			k := v4key(a)
			i := t.hash4(k)
			for t.v4[i].used {
				i = (i + 1) & uint32(len(t.v4)-1)
			}
			t.v4[i] = slot4{key: k, used: true, ep: ep}
			continue
		}
		hi, lo := v6key(a)
		i := t.hash6(hi, lo)
		for t.v6[i].used {
			i = (i + 1) & uint64(len(t.v6)-1)
		}
		t.v6[i] = slot6{hi: hi, lo: lo, used: true, ep: ep}
	}
	return t, nil
}

// tableSize is the smallest power of two at least 2n (and at least 2), so
// the table stays at most half full and probe sequences stay short.
func tableSize(n int) int {
	return max(2, 1<<bits.Len(uint(2*n-1)))
}

// Generation is the generation number the snapshot was built for.
func (t *Table) Generation() uint64 { return t.gen }

// Len is the number of endpoints.
func (t *Table) Len() int { return t.n }

// Lookup returns the endpoint with address a.
func (t *Table) Lookup(a netip.Addr) (Endpoint, bool) {
	if a.Is4() {
		return t.Lookup4(a.As4())
	}
	return t.lookup6(a.Unmap())
}

// Lookup4 returns the endpoint with IPv4 address a.
func (t *Table) Lookup4(a [4]byte) (Endpoint, bool) {
	k := binary.BigEndian.Uint32(a[:])
	mask := uint32(len(t.v4) - 1)
	for i := t.hash4(k); ; i = (i + 1) & mask {
		s := &t.v4[i]
		if !s.used {
			return Endpoint{}, false
		}
		if s.key == k {
			return s.ep, true
		}
	}
}

func (t *Table) lookup6(a netip.Addr) (Endpoint, bool) {
	if a.Is4() {
		return t.Lookup4(a.As4())
	}
	hi, lo := v6key(a)
	mask := uint64(len(t.v6) - 1)
	for i := t.hash6(hi, lo); ; i = (i + 1) & mask {
		s := &t.v6[i]
		if !s.used {
			return Endpoint{}, false
		}
		if s.hi == hi && s.lo == lo {
			return s.ep, true
		}
	}
}

// All returns every entry, for the control plane and tests.
func (t *Table) All() map[netip.Addr]Endpoint {
	m := make(map[netip.Addr]Endpoint, t.n)
	for _, s := range t.v4 {
		if s.used {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], s.key)
			m[netip.AddrFrom4(b)] = s.ep
		}
	}
	for _, s := range t.v6 {
		if s.used {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], s.hi)
			binary.BigEndian.PutUint64(b[8:], s.lo)
			m[netip.AddrFrom16(b)] = s.ep
		}
	}
	return m
}

// Fibonacci hashing: multiply by 2^w/phi and keep the top bits.
func (t *Table) hash4(k uint32) uint32 { return (k * 0x9E3779B1) >> t.shift4 }

func (t *Table) hash6(hi, lo uint64) uint64 {
	return ((hi ^ bits.RotateLeft64(lo, 29)) * 0x9E3779B97F4A7C15) >> t.shift6
}

func v4key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// v6key reads a through AsSlice, which the compiler keeps in registers;
// the 16-byte copy out of As16 costs a store-forwarding stall, about as
// much as the rest of a lookup. The zero Addr gives the key of ::.
func v6key(a netip.Addr) (hi, lo uint64) {
	b := a.AsSlice()
	if len(b) != 16 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}
