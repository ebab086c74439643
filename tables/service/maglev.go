package service

import (
	"encoding/binary"
)

// maglev fills a lookup table of prime size m for backends (sorted, at
// least one, fewer than the largest E): each backend walks its own
// permutation of the slots, offset + j·skip mod m, and the backends take
// turns claiming the next free slot on their walk until every slot is
// claimed.
func maglev[E uint8 | uint16](backends []Backend, m uint32) []E {
	free := ^E(0)
	n := len(backends)
	lut := make([]E, m)
	for i := range lut {
		lut[i] = free
	}
	pos := make([]uint32, n)  // next slot on each backend's walk
	skip := make([]uint32, n) // in [1, m): a generator of Z/m, as m is prime
	for i, b := range backends {
		pos[i], skip[i] = permutation(b, m)
	}
	for filled := uint32(0); ; {
		for i := range n {
			c, k := pos[i], skip[i]
			for lut[c] != free {
				if c += k; c >= m {
					c -= m
				}
			}
			lut[c] = E(i)
			if c += k; c >= m {
				c -= m
			}
			pos[i] = c
			if filled++; filled == m {
				return lut
			}
		}
	}
}

// permutation returns backend b's walk over m slots (m prime): its first
// slot and its step, from two independent hashes of its address and port.
func permutation(b Backend, m uint32) (offset, skip uint32) {
	offset = uint32(hashBackend(b, 0x6d61676c65762d31) % uint64(m))   // "maglev-1"
	skip = uint32(hashBackend(b, 0x6d61676c65762d32)%uint64(m-1)) + 1 // "maglev-2"
	return offset, skip
}

// hashBackend hashes b's address (as 16 bytes) and port under seed. It is
// fixed, not randomly seeded, so that every node computes the same
// tables.
func hashBackend(b Backend, seed uint64) uint64 {
	a := b.Addr.As16()
	h := mix64(seed ^ uint64(b.Port))
	h = mix64(h ^ binary.BigEndian.Uint64(a[:8]))
	return mix64(h ^ binary.BigEndian.Uint64(a[8:]))
}

// mix64 is the 64-bit finaliser of MurmurHash3: a bijection in which
// every input bit flips each output bit with probability near one half.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// tableSizes are the default Maglev table sizes, primes about four times
// apart.
var tableSizes = [...]uint32{4093, 16381, 65537}

// defaultTableSize is the smallest of tableSizes at least 100·n, the
// largest beyond.
func defaultTableSize(n int) uint32 {
	for _, m := range tableSizes {
		if uint64(m) >= 100*uint64(n) {
			return m
		}
	}
	return tableSizes[len(tableSizes)-1]
}

func isPrime(m uint32) bool {
	if m < 2 {
		return false
	}
	for d := uint32(2); d*d <= m; d++ {
		if m%d == 0 {
			return false
		}
	}
	return true
}
