package conntrack

// prefetch asks the CPU to fetch the cache line at addr (PREFETCHT0) and
// returns at once. Unlike a load whose value is dropped, it does not hold
// back the instructions after it until the line arrives, so a loop can
// have as many misses in flight as the CPU allows, however much work lies
// between them. Go has no intrinsic for it; the runtime's own is internal.
//
//go:noescape
func prefetch(addr uintptr)

// match returns the slots of bk (bit i for slot i, 1..15) that are used
// and carry tag, with SSE2 compares: no branch per slot.
//
//go:noescape
func match(bk *bucket, tag uint32) uint32
