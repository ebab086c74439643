package netpol

import (
	"cmp"
	"encoding/binary"
	"iter"
	"maps"
	"slices"
	"strings"
)

// Identities.
//
// Two pods that no policy can tell apart share an identity: what a policy
// can see of a pod is its namespace (and through it the namespace's
// labels), its labels and its named ports, so the identity key is exactly
// (namespace, label set, named-port set). Pods with different keys get
// different identities, even when today's policies happen to treat them
// alike, so that identities do not churn when policies change.
//
// Identities are numbered from 1. A key that the previous compilation
// numbered keeps its number; a new key takes the lowest number that
// neither this compilation nor the previous one uses. A number whose key
// disappeared is therefore not reused by the very next compilation, which
// keeps a snapshot built from the previous result (an endpoint table, say)
// from naming a different set of pods with it while the rest catches up.

// identity is one distinct (namespace, labels, named ports) of pods.
type identity struct {
	id     uint32
	key    string
	ns     *namespace
	labels map[string]string // of the first pod seen; equal for all
	ports  []NamedPort       // named, sorted by name, protocol, port; deduplicated
}

// numbers yields the numbers of in's named port n: what n resolves to on
// its pods (none when they have no such port).
func (in *identity) numbers(n portName) iter.Seq[uint16] {
	return func(yield func(uint16) bool) {
		for _, p := range in.ports {
			if p.Name == n.name && p.Proto == n.proto && !yield(p.Port) {
				return
			}
		}
	}
}

// namespace is a namespace as the compiler sees it.
type namespace struct {
	name   string
	labels map[string]string // with LabelMetadataName
	idents []int32           // indexes into compiler.idents, ascending
}

// identityKey returns the key of a pod with these properties and its
// named ports, canonical. The encoding is length-prefixed, so that no
// label text can make two different pods collide.
func identityKey(buf []byte, ns string, labels map[string]string, ports []NamedPort) (key []byte, named []NamedPort) {
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	str(ns)
	keys := slices.Sorted(maps.Keys(labels))
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		str(k)
		str(labels[k])
	}
	for _, p := range ports {
		if p.Name != "" {
			named = append(named, p)
		}
	}
	slices.SortFunc(named, compareNamedPort)
	named = slices.Compact(named)
	buf = binary.AppendUvarint(buf, uint64(len(named)))
	for _, p := range named {
		str(p.Name)
		buf = append(buf, p.Proto, byte(p.Port>>8), byte(p.Port))
	}
	return buf, named
}

func compareNamedPort(a, b NamedPort) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// number gives every identity its number: the previous one's for keys
// prev numbered, the lowest free ones (in key order, so that equal inputs
// give equal numbers) for the rest.
func number(idents []*identity, prev map[string]uint32) {
	var fresh []*identity
	taken := make([]bool, 1, len(idents)+1) // by number; 0 is never given
	take := func(id uint32) {
		for int(id) >= len(taken) {
			taken = append(taken, false)
		}
		taken[id] = true
	}
	for _, id := range prev {
		take(id) // retired numbers rest for one compilation
	}
	for _, in := range idents {
		if id, ok := prev[in.key]; ok {
			in.id = id
			continue
		}
		fresh = append(fresh, in)
	}
	slices.SortFunc(fresh, func(a, b *identity) int { return strings.Compare(a.key, b.key) })
	next := uint32(1)
	for _, in := range fresh {
		for int(next) < len(taken) && taken[next] {
			next++
		}
		in.id = next
		take(next)
		next++
	}
}
