package conntrack

// prefetch asks the CPU to fetch the cache line at addr (PREFETCHT0) and
// returns at once. Unlike a load whose value is dropped, it does not hold
// back the instructions after it until the line arrives, so a loop can
// have as many misses in flight as the CPU allows, however much work lies
// between them. Go has no intrinsic for it; the runtime's own is internal.
//
//go:noescape
func prefetch(addr uintptr)

// scan compares the 15 slots of bk at once (SSE2: no branch per slot) and
// returns in bits 1..15 the used slots that carry tag, and in bits 17..31
// the empty ones (bit 16+i for slot i).
//
//go:noescape
func scan(bk *bucket, tag uint32) uint32
