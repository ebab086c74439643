//go:build !amd64

package conntrack

// prefetch is a no-op where there is no assembly for it.
func prefetch(addr uintptr) {}

// scan is the portable form of the assembly on amd64.
func scan(bk *bucket, tag uint32) (m uint32) {
	for i := 1; i < bucketWords; i++ {
		switch s := bk[i].Load(); {
		case s == 0:
			m |= 1 << (16 + i)
		case s&tagBits == tag:
			m |= 1 << i
		}
	}
	return m
}
