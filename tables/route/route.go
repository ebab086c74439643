// Package route maps a packet's destination address to its next hop: a
// local pod, a remote node (and the tunnel to reach it), the slow path, or
// a drop. The fast path reads it for every frame it forwards.
//
// A [Table] is an immutable snapshot with a generation number, like
// tables/endpoint. The agent (one writer) fills a [Builder], calls
// [Builder.Build] and publishes the result through an atomic.Pointer;
// workers load the pointer once per batch and look up without locks or
// allocation. [Table.Builder] starts the next generation from the current
// one, so an update is "copy, change, build, publish".
//
// Typical contents on one node:
//
//	10.244.1.0/24  LocalPort ViaEndpoint   this node's pod CIDR: the endpoint table has the port
//	10.244.2.0/24  RemoteNode 2 VXLAN      another node's pod CIDR
//	10.96.0.0/12   SlowPath                the service CIDR, until the fast path does NAT
//	0.0.0.0/0      SlowPath                egress through the host (or Drop)
//
// The longest matching prefix wins (tables/lpm, whose package comment
// explains the layout and the memory per route). A [NextHop] is 6 bytes
// and routes share equal next hops, so the table's size is set by the
// number of prefixes, not by what they point at.
//
// [Table.Lookup4] takes an IPv4 destination as its 4 header bytes,
// [Table.Lookup] a netip.Addr of either family. On 100k random routes a
// lookup costs about 12 ns for IPv4 and 23 ns for IPv6 on the development
// machine (bart, the baseline in bench_test.go: 35-100 ns and 30-35 ns),
// and building a 100k-route snapshot about 18 ms.
package route

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"

	"github.com/ringnet/ringnet/tables/lpm"
)

// Kind says what the fast path does with a packet for a destination.
type Kind uint8

const (
	// LocalPort delivers to a pod on this node, through port Port.
	LocalPort Kind = iota + 1
	// RemoteNode sends to the node with index Node, encapsulated as
	// Tunnel says.
	RemoteNode
	// SlowPath hands the packet to the host kernel through the TAP device.
	SlowPath
	// Drop drops the packet (counted as a drop by route).
	Drop
)

var kindNames = [...]string{"invalid", "LocalPort", "RemoteNode", "SlowPath", "Drop"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Tunnel is how a packet for a remote node leaves this one.
type Tunnel uint8

const (
	// Direct routes the packet unchanged to the node's underlay address
	// (nodes on one subnet).
	Direct Tunnel = iota
	// VXLAN encapsulates in UDP/VXLAN.
	VXLAN
	// IPIP encapsulates in IP (protocol 4, or 41 for IPv6 inside IPv4).
	IPIP
)

var tunnelNames = [...]string{"Direct", "VXLAN", "IPIP"}

func (t Tunnel) String() string {
	if int(t) < len(tunnelNames) {
		return tunnelNames[t]
	}
	return fmt.Sprintf("Tunnel(%d)", uint8(t))
}

// ViaEndpoint as a LocalPort next hop's Port means "the destination is a
// pod on this node; find its port in the endpoint table". A pod CIDR route
// uses it; a host route for one pod may name the port itself.
const ViaEndpoint uint16 = 0xFFFF

// NextHop is where a route leads: 6 bytes, compared with ==. Fields a kind
// does not use are zero, so equal next hops are equal values.
type NextHop struct {
	Kind   Kind
	Tunnel Tunnel // RemoteNode only
	Port   uint16 // LocalPort only: the port ID, or ViaEndpoint
	Node   uint16 // RemoteNode only: the node's index (tables/neighbor says how to reach it)
}

// Check reports what is wrong with h, if anything.
func (h NextHop) Check() error {
	switch h.Kind {
	case LocalPort:
		if h.Tunnel != Direct || h.Node != 0 {
			return errors.New("LocalPort next hop with a tunnel or node")
		}
	case RemoteNode:
		if h.Tunnel > IPIP {
			return fmt.Errorf("unknown tunnel %d", uint8(h.Tunnel))
		}
		if h.Port != 0 {
			return errors.New("RemoteNode next hop with a port")
		}
	case SlowPath, Drop:
		if h != (NextHop{Kind: h.Kind}) {
			return fmt.Errorf("%v next hop with a port, node or tunnel", h.Kind)
		}
	default:
		return fmt.Errorf("invalid next hop kind %d", uint8(h.Kind))
	}
	return nil
}

// Table is an immutable snapshot of the routes for one generation.
type Table struct {
	gen uint64
	t   lpm.Table[NextHop] // by value: one pointer less per lookup
}

// Generation is the generation number the snapshot was built for.
func (t *Table) Generation() uint64 { return t.gen }

// Len is the number of routes, both families.
func (t *Table) Len() int { return t.t.Len() }

// Lookup returns the next hop of the longest route containing a. An
// IPv4-mapped IPv6 address is IPv6 here; unmap it first if it should be
// routed as IPv4.
func (t *Table) Lookup(a netip.Addr) (NextHop, bool) { return t.t.Lookup(a) }

// Lookup4 returns the next hop of the longest IPv4 route containing a.
func (t *Table) Lookup4(a [4]byte) (NextHop, bool) { return t.t.Lookup4(a) }

// Get returns the next hop of exactly route p.
func (t *Table) Get(p netip.Prefix) (NextHop, bool) { return t.t.Get(p) }

// LookupPrefix returns the longest route containing all of p, and its next
// hop.
func (t *Table) LookupPrefix(p netip.Prefix) (netip.Prefix, NextHop, bool) {
	return t.t.LookupPrefix(p)
}

// All yields every route, IPv4 first, sorted by address then length.
func (t *Table) All() iter.Seq2[netip.Prefix, NextHop] { return t.t.All() }

// Stats returns the snapshot's sizes.
func (t *Table) Stats() lpm.Stats { return t.t.Stats() }

// Builder returns a Builder holding this snapshot's routes.
func (t *Table) Builder() *Builder { return &Builder{b: *t.t.Builder()} }

// Builder is the agent's mutable set of routes. The zero Builder is empty
// and ready to use; it is not safe for concurrent use.
type Builder struct {
	b lpm.Builder[NextHop]
}

// Insert adds or replaces the route for p (host bits masked off).
func (b *Builder) Insert(p netip.Prefix, h NextHop) error {
	if err := h.Check(); err != nil {
		return fmt.Errorf("route %v: %w", p, err)
	}
	if err := b.b.Insert(p, h); err != nil {
		return fmt.Errorf("route %v: %w", p, err)
	}
	return nil
}

// Delete removes the route for p and reports whether there was one.
func (b *Builder) Delete(p netip.Prefix) bool { return b.b.Delete(p) }

// Get returns the next hop of exactly route p.
func (b *Builder) Get(p netip.Prefix) (NextHop, bool) { return b.b.Get(p) }

// Len is the number of routes.
func (b *Builder) Len() int { return b.b.Len() }

// Build compiles the routes into a snapshot for generation gen. The
// Builder stays usable for the next one.
func (b *Builder) Build(gen uint64) *Table {
	return &Table{gen: gen, t: *b.b.Build()}
}

// New builds a snapshot for generation gen from a set of routes.
func New(gen uint64, routes map[netip.Prefix]NextHop) (*Table, error) {
	var b Builder
	for p, h := range routes {
		if err := b.Insert(p, h); err != nil {
			return nil, err
		}
	}
	return b.Build(gen), nil
}
