// Package service maps a service's virtual address, protocol and port to
// its backends, and picks one backend per flow by Maglev consistent
// hashing: the table the fast path reads to load-balance the first packet
// of a flow to a ClusterIP.
//
// # Model
//
// The agent turns Services and their EndpointSlices into [Spec] values and
// compiles them with [Build] (or [Table.Next]) into a [Table], an
// immutable snapshot stamped with a generation number, published through
// an atomic pointer (tables/snapshot). Workers load it once per batch,
// find the service with [Table.Lookup] and the flow's backend with
// [Service.Backend], both without locks or allocation. Nothing in a Table
// changes after Build returns; a *Service stays valid for as long as its
// Table is held.
//
// # Layout
//
// Services sit in an open-addressing hash table with linear probing, at
// most half full, keyed by the VIP as 16 bytes (IPv4 as IPv4-mapped) with
// protocol and port; a slot holds the key and the service's index in 24
// bytes, so a hit is one multiply and usually one cache line.
//
// Each service with two or more backends has a Maglev lookup table
// (Eisenbud et al., NSDI 2016) of prime size M. Every backend gets a
// permutation of the M slots from two hashes of its address and port (an
// offset and a skip), and the backends take turns claiming the next free
// slot of their permutation until all are taken. So each backend owns
// M/N slots give or take one, and when a backend comes or goes most slots
// keep their owner, so most flows keep their backend. A flow's backend is
// the owner of slot flowHash·M/2³² (the hash's high bits scaled to the
// table, no division). Slots are one byte for up to 255 backends, two
// beyond. The hashes are fixed (no random seed) and backends are sorted
// before the fill, so every node, every restart and every ordering of the
// same backends gives the same table: a flow gets the same backend
// whichever node's dataplane sees it.
//
// # Table size
//
// M is Spec.TableSize, or by default the smallest of 4093, 16381 and
// 65537 that is at least 100·N, which keeps every backend within 1% of an
// even share. The default must not follow N closely: Maglev tables of
// different sizes share nothing, so a change of M moves nearly every
// flow. Three sizes far apart mean that scaling a service seldom crosses
// one (at 41 and 164 backends); removing or adding a backend otherwise
// moves little more than the 1/N of flows that must move (for N = 10 and
// M = 4093, 1.1/N). Memory is M bytes per service up to 255 backends:
// 40 MB for 10 000 small services.
package service

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"time"
)

// Backend is one endpoint of a service.
type Backend struct {
	Addr netip.Addr
	Port uint16
}

// Spec is the desired state of one service port: Build's input.
type Spec struct {
	VIP      netip.Addr // cluster IP
	Proto    uint8      // IP protocol number
	Port     uint16     // service port
	Backends []Backend  // ready endpoints; none: Backend reports false
	// TableSize is the size of the Maglev lookup table: a prime, at least
	// the number of backends, at most MaxTableSize. 0 picks the default
	// (see the package documentation).
	TableSize uint32
	// Affinity is sessionAffinity ClientIP's timeout: a new connection
	// from a client whose previous connection to this service port was
	// seen less than Affinity ago goes to the same backend, if it is still
	// one. 0: no affinity (each connection by its flow hash).
	Affinity time.Duration
	// External marks an address clients outside the cluster reach: a
	// NodePort on the node's address, an externalIP, a LoadBalancer
	// ingress IP. Their connections are masqueraded to the node's address
	// (so that replies come back through this node), unless Local.
	External bool
	// Local is externalTrafficPolicy Local for an External entry: the
	// agent gives only this node's backends, and clients keep their
	// address.
	Local bool
}

// String names the service port as "proto/VIP:port", e.g. "6/10.96.0.1:443".
func (sp *Spec) String() string {
	return fmt.Sprintf("%d/%s", sp.Proto, netip.AddrPortFrom(sp.VIP.Unmap(), sp.Port))
}

// MaxAffinity bounds Spec.Affinity: Kubernetes' own limit
// (sessionAffinityConfig.clientIP.timeoutSeconds, at most 86400).
const MaxAffinity = 24 * time.Hour

// MaxTableSize bounds Spec.TableSize.
const MaxTableSize = 1 << 24

// maxBackends is the most backends a service may have: slots are uint16
// indexes, and 0xffff marks a free slot during the fill.
const maxBackends = 1<<16 - 1

// Service is a compiled service in a Table.
type Service struct {
	vip      netip.Addr
	proto    uint8
	port     uint16
	affinity uint32 // seconds; 0: none
	external bool
	local    bool
	m        uint32    // Maglev table size; 0 without backends
	backends []Backend // sorted by address, then port
	ids      []idIndex // backends' IDs, sorted, for BackendByID
	// The Maglev lookup table, slot to index into backends: lut8 for 2 to
	// 255 backends, lut16 for more; neither for one backend (every slot
	// would be 0) or none.
	lut8  []uint8
	lut16 []uint16
}

// Backend returns the backend of the flow whose hash is flowHash, and
// false if the service has no backends. flowHash must be well mixed in
// its high bits (any good hash of the 5-tuple is); the same flowHash
// always gives the same backend in one snapshot.
func (s *Service) Backend(flowHash uint32) (Backend, bool) {
	slot := uint64(flowHash) * uint64(s.m) >> 32
	switch {
	case s.lut8 != nil:
		return s.backends[s.lut8[slot]], true
	case s.lut16 != nil:
		return s.backends[s.lut16[slot]], true
	case len(s.backends) == 1:
		return s.backends[0], true
	}
	return Backend{}, false
}

// Affinity is the sessionAffinity timeout in whole seconds (rounded up),
// 0 without affinity.
func (s *Service) Affinity() uint32 { return s.affinity }

// Masquerade reports whether connections from clients outside the cluster
// are masqueraded to the node's address: External and not Local.
func (s *Service) Masquerade() bool { return s.external && !s.local }

// ID is a 32-bit name of the backend, the same in every snapshot and on
// every node: what session affinity remembers a client's backend by, as
// indexes change when backends come and go.
func (b Backend) ID() uint32 {
	h := hashBackend(b, 0x6166666e2d696473) // "affn-ids"
	return uint32(h) ^ uint32(h>>32)
}

// idIndex maps a backend ID to the backend's index.
type idIndex struct{ id, i uint32 }

// BackendByID returns the backend whose ID is id, false if it is no
// longer one of the service's. Two backends of a service with the same ID
// (one chance in 2³² for a pair) are both found by the smaller address.
func (s *Service) BackendByID(id uint32) (Backend, bool) {
	i, ok := slices.BinarySearchFunc(s.ids, id, func(x idIndex, id uint32) int { return cmp.Compare(x.id, id) })
	if !ok {
		return Backend{}, false
	}
	return s.backends[s.ids[i].i], true
}

// VIP returns the service's virtual address.
func (s *Service) VIP() netip.Addr { return s.vip }

// Proto returns the service's IP protocol.
func (s *Service) Proto() uint8 { return s.proto }

// Port returns the service's port.
func (s *Service) Port() uint16 { return s.port }

// Backends returns a copy of the backends, sorted by address and port.
func (s *Service) Backends() []Backend { return slices.Clone(s.backends) }

// TableSize returns the size M of the Maglev lookup table, 0 with no
// backends.
func (s *Service) TableSize() int { return int(s.m) }

type slot struct {
	hi, lo uint64 // VIP as 16 bytes
	port   uint16
	proto  uint8
	used   bool
	svc    uint32 // index into Table.services
}

// Table is an immutable snapshot of the services. Make one with Build;
// the zero Table is not usable.
type Table struct {
	gen      uint64
	slots    []slot
	shift    uint8 // 64 - log2(len(slots))
	services []Service
}

// Build compiles specs into the snapshot for generation gen. It does not
// keep or change specs.
func Build(gen uint64, specs []Spec) (*Table, error) { return build(gen, specs, nil) }

// Next compiles specs into the snapshot for generation gen like Build,
// reusing t's Maglev tables for the services whose backends and table
// size did not change (they are immutable, so two snapshots may share
// them). Filling a table costs about M·ln M steps, so this turns a
// rebuild after one EndpointSlice update from a refill of every service
// into a refill of one.
func (t *Table) Next(gen uint64, specs []Spec) (*Table, error) { return build(gen, specs, t) }

func build(gen uint64, specs []Spec, prev *Table) (*Table, error) {
	t := &Table{gen: gen, services: make([]Service, len(specs))}
	size := max(2, 1<<bits.Len(uint(2*len(specs)-1)))
	t.slots = make([]slot, size)
	t.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for i := range specs {
		sp := &specs[i]
		if !sp.VIP.IsValid() {
			return nil, fmt.Errorf("service %d: no VIP", i)
		}
		hi, lo, _ := key(sp.VIP)
		j := hash(hi, lo, sp.Proto, sp.Port, t.shift)
		for ; t.slots[j].used; j = (j + 1) & uint64(size-1) {
			if o := &t.slots[j]; o.hi == hi && o.lo == lo && o.proto == sp.Proto && o.port == sp.Port {
				return nil, fmt.Errorf("%s: listed twice", sp)
			}
		}
		s, err := compile(sp, prev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sp, err)
		}
		t.services[i] = s
		t.slots[j] = slot{hi: hi, lo: lo, port: sp.Port, proto: sp.Proto, used: true, svc: uint32(i)}
	}
	return t, nil
}

// compile checks one spec and fills its Maglev table, or takes it from
// prev (which may be nil).
func compile(sp *Spec, prev *Table) (Service, error) {
	s := Service{vip: sp.VIP.Unmap(), proto: sp.Proto, port: sp.Port, external: sp.External, local: sp.Local}
	switch {
	case sp.Affinity < 0, sp.Affinity > MaxAffinity:
		return s, fmt.Errorf("affinity timeout %v out of range (0 to %v)", sp.Affinity, MaxAffinity)
	case sp.Local && !sp.External:
		return s, errors.New("local (externalTrafficPolicy) without external")
	}
	s.affinity = uint32((sp.Affinity + time.Second - 1) / time.Second)
	n := len(sp.Backends)
	if n > maxBackends {
		return s, fmt.Errorf("%d backends, more than %d", n, maxBackends)
	}
	s.backends = make([]Backend, n)
	for i, b := range sp.Backends {
		if !b.Addr.IsValid() {
			return s, fmt.Errorf("backend %d has no address", i)
		}
		s.backends[i] = Backend{Addr: b.Addr.Unmap().WithZone(""), Port: b.Port}
	}
	slices.SortFunc(s.backends, compareBackends)
	for i := 1; i < n; i++ {
		if s.backends[i] == s.backends[i-1] {
			return s, fmt.Errorf("backend %s listed twice", netip.AddrPortFrom(s.backends[i].Addr, s.backends[i].Port))
		}
	}
	m := sp.TableSize
	switch {
	case m == 0:
		m = defaultTableSize(n)
	case m > MaxTableSize:
		return s, fmt.Errorf("table size %d above %d", m, MaxTableSize)
	case !isPrime(m):
		return s, fmt.Errorf("table size %d is not prime", m)
	case int(m) < n:
		return s, fmt.Errorf("table size %d below the %d backends", m, n)
	}
	if n == 0 {
		return s, nil
	}
	s.m = m
	if prev != nil {
		if ps, ok := prev.Lookup(sp.VIP, sp.Proto, sp.Port); ok && ps.m == m && slices.Equal(ps.backends, s.backends) {
			s.backends, s.ids, s.lut8, s.lut16 = ps.backends, ps.ids, ps.lut8, ps.lut16
			return s, nil
		}
	}
	s.ids = make([]idIndex, n)
	for i, b := range s.backends {
		s.ids[i] = idIndex{id: b.ID(), i: uint32(i)}
	}
	slices.SortStableFunc(s.ids, func(a, b idIndex) int { return cmp.Compare(a.id, b.id) })
	switch {
	case n == 1:
	case n <= 0xff:
		s.lut8 = maglev[uint8](s.backends, m)
	default:
		s.lut16 = maglev[uint16](s.backends, m)
	}
	return s, nil
}

func compareBackends(a, b Backend) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// Generation is the generation number the snapshot was built for.
func (t *Table) Generation() uint64 { return t.gen }

// Len is the number of services.
func (t *Table) Len() int { return len(t.services) }

// Lookup returns the service at (vip, proto, port).
func (t *Table) Lookup(vip netip.Addr, proto uint8, port uint16) (*Service, bool) {
	hi, lo, ok := key(vip)
	if !ok {
		return nil, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := hash(hi, lo, proto, port, t.shift); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.used {
			return nil, false
		}
		if s.lo == lo && s.hi == hi && s.port == port && s.proto == proto {
			return &t.services[s.svc], true
		}
	}
}

// All returns every service as a Spec, backends sorted and table sizes
// filled in, in Build's order: for the control plane and tests.
func (t *Table) All() []Spec {
	out := make([]Spec, len(t.services))
	for i := range t.services {
		s := &t.services[i]
		out[i] = Spec{VIP: s.vip, Proto: s.proto, Port: s.port, Backends: s.Backends(), TableSize: s.m,
			Affinity: time.Duration(s.affinity) * time.Second, External: s.external, Local: s.local}
	}
	return out
}

// key returns a as 16 bytes, IPv4 as IPv4-mapped, and false for the zero
// Addr. It reads through As4 and AsSlice, which the compiler keeps in
// registers; the 16-byte copy out of As16 costs a store-forwarding stall,
// a third of a lookup.
func key(a netip.Addr) (hi, lo uint64, ok bool) {
	if a.Is4() {
		b := a.As4()
		return 0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:])), true
	}
	b := a.AsSlice()
	if len(b) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), true
}

// hash folds the key into 64 bits (one to one for IPv4, whose high half
// is zero and whose low half has 0xffff above the address) and keeps the
// top bits of its Fibonacci product.
func hash(hi, lo uint64, proto uint8, port uint16, shift uint8) uint64 {
	x := lo ^ uint64(port)<<32 ^ uint64(proto)<<48 ^ hi*0xff51afd7ed558ccd
	return x * 0x9E3779B97F4A7C15 >> shift
}
