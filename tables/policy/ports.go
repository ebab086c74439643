package policy

import (
	"slices"
)

// portRange is the ports lo..hi, inclusive.
type portRange struct{ lo, hi uint16 }

// maxInline is how many disjoint ranges a portSet holds in place; a set
// with more is a bitmap of all 65536 ports, shared by every set equal to
// it. Most rules name one to three ports, so nearly every set is inline
// and answered from the cache line the hash probe already loaded.
const maxInline = 3

// portSet kinds beyond 0..maxInline (the number of inline ranges).
const (
	setAll    = 0xff // every port
	setBitmap = 0xfe // bitmap number in r[0]
)

// portSet is a set of ports, in 14 bytes. The zero portSet is empty.
type portSet struct {
	n uint8 // 0..maxInline inline ranges, setAll or setBitmap
	// r holds the inline ranges as (lo, hi-lo), which makes the test one
	// subtraction and one compare; for setBitmap r[0] is the bitmap
	// number, high half in lo.
	r [maxInline]portRange
}

// bitmapWords is the size of one port bitmap in uint64s (8 KiB).
const bitmapWords = 1 << 16 / 64

// has reports whether port is in s. bitmaps are the table's bitmaps.
func (s *portSet) has(port uint16, bitmaps []uint64) bool {
	n := s.n
	if n <= maxInline {
		for i := range n {
			if port-s.r[i].lo <= s.r[i].hi {
				return true
			}
		}
		return false
	}
	if n == setAll {
		return true
	}
	b := int(s.r[0].lo)<<16 | int(s.r[0].hi)
	return bitmaps[b*bitmapWords+int(port>>6)]>>(port&63)&1 != 0
}

// normalize sorts rs and merges overlapping and adjacent ranges, in place.
func normalize(rs []portRange) []portRange {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if int(r.lo) <= int(last.hi)+1 {
			last.hi = max(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// bitmapSet makes portSets, sharing the bitmaps of equal large sets.
type bitmapSet struct {
	words []uint64          // bitmapWords per bitmap
	index map[string]uint32 // ranges, as bytes, to bitmap number
}

// make returns the portSet of rs, which must be normalized.
func (bs *bitmapSet) make(rs []portRange) portSet {
	var s portSet
	switch {
	case len(rs) == 1 && rs[0] == portRange{0, 0xffff}:
		s.n = setAll
	case len(rs) <= maxInline:
		s.n = uint8(len(rs))
		for i, r := range rs {
			s.r[i] = portRange{r.lo, r.hi - r.lo}
		}
	default:
		key := make([]byte, 0, 4*len(rs))
		for _, r := range rs {
			key = append(key, byte(r.lo>>8), byte(r.lo), byte(r.hi>>8), byte(r.hi))
		}
		b, ok := bs.index[string(key)]
		if !ok {
			if bs.index == nil {
				bs.index = map[string]uint32{}
			}
			b = uint32(len(bs.words) / bitmapWords)
			bs.index[string(key)] = b
			bs.words = append(bs.words, make([]uint64, bitmapWords)...)
			w := bs.words[int(b)*bitmapWords:]
			for _, r := range rs {
				for p := int(r.lo); p <= int(r.hi); p++ {
					w[p>>6] |= 1 << (p & 63)
				}
			}
		}
		s.n = setBitmap
		s.r[0] = portRange{uint16(b >> 16), uint16(b)}
	}
	return s
}
