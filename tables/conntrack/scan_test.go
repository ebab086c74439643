package conntrack

import (
	"math/rand/v2"
	"testing"
)

// scan agrees with a slot-by-slot reading of random buckets: empty slots,
// slots with the tag and any index, tag 0, and slot 0 (the spill count),
// which is never a match nor empty.
func TestScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		var bk bucket
		tag := uint32(rng.IntN(128)) << 25
		for i := range bk {
			switch rng.IntN(4) {
			case 0:
			case 1:
				bk[i].Store(tag | rng.Uint32()&(1<<25-1))
			case 2:
				bk[i].Store(tag)
			default:
				bk[i].Store(rng.Uint32())
			}
		}
		var want uint32
		for i := 1; i < bucketWords; i++ {
			if s := bk[i].Load(); s == 0 {
				want |= 1 << (16 + i)
			} else if s&tagBits == tag {
				want |= 1 << i
			}
		}
		if got := scan(&bk, tag); got != want {
			t.Fatalf("scan(tag %x) = %032b, want %032b", tag, got, want)
		}
	}
}
