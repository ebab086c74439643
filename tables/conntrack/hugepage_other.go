//go:build !linux

package conntrack

// adviseHugePages is a no-op where there is no madvise(MADV_HUGEPAGE).
func adviseHugePages[T any](s []T) {}
