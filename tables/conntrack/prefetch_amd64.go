package conntrack

// prefetch asks the CPU to fetch the cache line at addr (PREFETCHT0) and
// returns at once. Unlike a load whose value is dropped, it does not hold
// back the instructions after it until the line arrives, so a loop can
// have as many misses in flight as the CPU allows, however much work lies
// between them. Go has no intrinsic for it; the runtime's own is internal.
//
//go:noescape
func prefetch(addr uintptr)
