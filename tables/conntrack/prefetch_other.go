//go:build !amd64

package conntrack

// prefetch is a no-op where there is no assembly for it.
func prefetch(addr uintptr) {}

func match(bk *bucket, tag uint32) (m uint32) {
	for i := 1; i < bucketWords; i++ {
		if s := bk[i].Load(); s&tagBits == tag && s != 0 {
			m |= 1 << i
		}
	}
	return m
}
