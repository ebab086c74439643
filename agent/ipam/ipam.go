// Package ipam hands out pod addresses from the node's pod CIDRs and
// remembers them on disk.
//
// Every allocation is keyed by (container ID, interface name) and is
// idempotent: asking again for the same key returns the same addresses. An
// allocation is committed to a bbolt database (one fsynced write
// transaction) before it is returned, and every address has an index entry
// naming its owner, so a crash or kill -9 at any instant leaves either no
// allocation or a complete one: an address is never handed out twice.
// Addresses are handed out round-robin from a persisted cursor, so a freed
// address is not reused at once (a late packet for an old pod does not reach
// a new one).
//
// The store also keeps what the daemon needs to re-attach a pod's port after
// a restart (host interface, pod MAC, netns), so the pod record and its
// addresses live and die together.
//
// Store is safe for concurrent use; bbolt serialises writers.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Key identifies an allocation: one interface of one container.
type Key struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

func (k Key) bytes() []byte { return []byte(k.ContainerID + "/" + k.IfName) }

func (k Key) String() string { return k.ContainerID + "/" + k.IfName }

// Record is one pod interface's allocation and what the daemon knows of it.
type Record struct {
	Key
	IPv4         netip.Addr `json:"ipv4,omitzero"`
	IPv6         netip.Addr `json:"ipv6,omitzero"`
	Netns        string     `json:"netns,omitempty"`
	PodNamespace string     `json:"podNamespace,omitempty"`
	PodName      string     `json:"podName,omitempty"`
	// HostIfname is the host end's name, given by the caller. PodMAC is
	// the pod end's MAC: chosen here when the addresses are (PodMAC), so
	// that the plugin can make the veth with it and attaching the port
	// changes nothing on disk; records of older versions have it only
	// once the port was attached.
	HostIfname string    `json:"hostIfname,omitempty"`
	PodMAC     string    `json:"podMAC,omitempty"`
	Created    time.Time `json:"created"`
}

// ErrPoolExhausted is returned (wrapped, naming the pool) when a pool has no
// free address.
var ErrPoolExhausted = errors.New("pool exhausted")

var (
	bucketRecords = []byte("records") // Key -> Record (JSON)
	bucketAddrs   = []byte("addrs")   // address -> Key
	bucketMeta    = []byte("meta")    // "cursor/<pool>" -> last address handed out
)

// Store is the allocation database of one node.
type Store struct {
	db    *bolt.DB
	pools []netip.Prefix // at most one IPv4 and one IPv6
}

// Open opens (or creates) the database at path for the given pod CIDRs:
// at most one IPv4 and one IPv6 prefix. Records whose addresses fall
// outside the pools (the node's CIDRs changed) are kept until released.
func Open(path string, pools []netip.Prefix) (*Store, error) {
	var have4, have6 bool
	for _, p := range pools {
		p = p.Masked()
		switch {
		case !p.IsValid():
			return nil, errors.New("ipam: invalid pod CIDR")
		case p.Addr().Is4() && have4, p.Addr().Is6() && have6:
			return nil, fmt.Errorf("ipam: more than one %s pod CIDR", family(p.Addr()))
		case p.Addr().Is4() && p.Bits() > 30, p.Addr().Is6() && p.Bits() > 126:
			return nil, fmt.Errorf("ipam: pod CIDR %s is too small", p)
		}
		have4, have6 = have4 || p.Addr().Is4(), have6 || p.Addr().Is6()
	}
	if len(pools) == 0 {
		return nil, errors.New("ipam: no pod CIDR")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("ipam: open %s: locked by another process (is another ringnetd running?)", path)
		}
		return nil, fmt.Errorf("ipam: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketAddrs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ipam: init %s: %w", path, err)
	}
	s := &Store{db: db}
	for _, p := range pools {
		s.pools = append(s.pools, p.Masked())
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Pools returns the pod CIDRs addresses come from.
func (s *Store) Pools() []netip.Prefix { return append([]netip.Prefix(nil), s.pools...) }

// Allocate returns the record for r.Key, allocating one address from each
// pool if the key has none yet. The other fields of r are stored with a new
// allocation. It reports whether the allocation is new.
func (s *Store) Allocate(r Record) (Record, bool, error) {
	if r.ContainerID == "" || r.IfName == "" {
		return Record{}, false, errors.New("ipam: container ID and interface name are required")
	}
	var out Record
	var created bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		recs, addrs, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketAddrs), tx.Bucket(bucketMeta)
		if v := recs.Get(r.bytes()); v != nil {
			return json.Unmarshal(v, &out)
		}
		out = r
		out.IPv4, out.IPv6 = netip.Addr{}, netip.Addr{}
		out.Created = time.Now().UTC().Truncate(time.Second)
		for _, p := range s.pools {
			a, err := s.next(p, addrs, meta)
			if err != nil {
				return err
			}
			if err := addrs.Put(a.AsSlice(), r.bytes()); err != nil {
				return err
			}
			if a.Is4() {
				out.IPv4 = a
			} else {
				out.IPv6 = a
			}
		}
		out.PodMAC = PodMAC(out.IPv4, out.IPv6).String()
		created = true
		return putRecord(recs, out)
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("ipam: allocate for %s: %w", r.Key, err)
	}
	return out, created, nil
}

// PodMAC is the MAC of the pod interface with these addresses:
// 0a:58 and the four bytes of the IPv4 address, or without one the last
// four of the IPv6 address (OVN-Kubernetes' convention). Locally
// administered, unicast, and unique on the node while the addresses are.
func PodMAC(v4, v6 netip.Addr) net.HardwareAddr {
	a := v4
	if !a.IsValid() {
		a = v6
	}
	b := a.AsSlice()
	return append(net.HardwareAddr{0x0a, 0x58}, b[len(b)-4:]...)
}

// next finds the first free address of p after the pool's cursor, skipping
// the network address (and, for IPv4, the broadcast address), and moves the
// cursor to it.
func (s *Store) next(p netip.Prefix, addrs, meta *bolt.Bucket) (netip.Addr, error) {
	cursorKey := []byte("cursor/" + p.String())
	first := p.Addr().Next()
	last := lastAddr(p)
	if p.Addr().Is4() {
		last = last.Prev() // broadcast
	}
	start := first
	if v := meta.Get(cursorKey); v != nil {
		if c, ok := netip.AddrFromSlice(v); ok && p.Contains(c) {
			start = c.Next()
		}
	}
	// Scan at most the whole pool once (bounded for IPv6: 1<<16 probes
	// are plenty before declaring a /64 full, which it never is).
	size := poolSize(p)
	limit := uint64(1) << 16
	if size.IsUint64() && size.Uint64() < limit {
		limit = size.Uint64()
	}
	a := start
	for range limit {
		if !p.Contains(a) || a.Compare(last) > 0 {
			a = first
		}
		if addrs.Get(a.AsSlice()) == nil {
			return a, meta.Put(cursorKey, a.AsSlice())
		}
		a = a.Next()
	}
	return netip.Addr{}, fmt.Errorf("%w: %s pool %s has no free address", ErrPoolExhausted, family(p.Addr()), p)
}

// Update stores fields the daemon learnt later (host interface, pod MAC)
// for an existing allocation.
func (s *Store) Update(k Key, fn func(*Record)) (Record, error) {
	var out Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketRecords)
		v := recs.Get(k.bytes())
		if v == nil {
			return fmt.Errorf("no allocation for %s", k)
		}
		if err := json.Unmarshal(v, &out); err != nil {
			return err
		}
		fn(&out)
		out.Key = k
		return putRecord(recs, out)
	})
	if err != nil {
		return Record{}, fmt.Errorf("ipam: update %s: %w", k, err)
	}
	return out, nil
}

// Get returns the record for k.
func (s *Store) Get(k Key) (Record, bool, error) {
	var out Record
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get(k.bytes())
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &out)
	})
	return out, ok, err
}

// Release frees k's addresses and forgets its record. Releasing an unknown
// key is not an error. It returns the record that was released, if any.
func (s *Store) Release(k Key) (Record, bool, error) {
	var out Record
	var found bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		recs, addrs := tx.Bucket(bucketRecords), tx.Bucket(bucketAddrs)
		v := recs.Get(k.bytes())
		if v == nil {
			return nil
		}
		found = true
		if err := json.Unmarshal(v, &out); err != nil {
			return err
		}
		for _, a := range []netip.Addr{out.IPv4, out.IPv6} {
			if a.IsValid() {
				if err := addrs.Delete(a.AsSlice()); err != nil {
					return err
				}
			}
		}
		return recs.Delete(k.bytes())
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("ipam: release %s: %w", k, err)
	}
	return out, found, nil
}

// List returns every record.
func (s *Store) List() ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(_, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Owner returns the key that holds address a, if any.
func (s *Store) Owner(a netip.Addr) (Key, bool, error) {
	var k Key
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAddrs).Get(a.AsSlice())
		if v == nil {
			return nil
		}
		ok = true
		var r Record
		if rv := tx.Bucket(bucketRecords).Get(v); rv != nil {
			if err := json.Unmarshal(rv, &r); err != nil {
				return err
			}
		}
		k = r.Key
		return nil
	})
	return k, ok, err
}

func putRecord(b *bolt.Bucket, r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(r.bytes(), v)
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func poolSize(p netip.Prefix) *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
}
