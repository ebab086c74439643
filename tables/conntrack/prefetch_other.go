//go:build !amd64

package conntrack

// prefetch is a no-op where there is no assembly for it.
func prefetch(addr uintptr) {}
