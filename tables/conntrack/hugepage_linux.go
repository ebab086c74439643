package conntrack

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on x86-64 (and on
// arm64 with 4 KiB pages).
const hugePage = 2 << 20

// adviseHugePages asks the kernel to back the 2 MiB-aligned part of s with
// transparent huge pages (madvise MADV_HUGEPAGE; Debian's default THP
// mode, "madvise", gives them only to memory so advised). A lookup in a
// table larger than the caches reads a bucket and a record at random:
// with 4 KiB pages each read also misses the TLB, whose few thousand
// entries cover a few MiB, and waits for a page walk (in a VM, a walk of
// the guest's and the host's tables) on top of the cache miss; with 2 MiB
// pages the 1M-connection table's 160 MiB are 80 TLB entries.
//
// s is memory of the Go heap just allocated by New. Fresh from the OS it
// is not yet touched, so its pages are faulted in huge from the start;
// memory the runtime reuses may already be in small pages, which the
// kernel's khugepaged collapses later. The memory
// stays the runtime's: the advice changes how the kernel backs it, and
// nothing else; when the table is collected, the runtime releases the
// range as it does any other. It is only advice: where THP is disabled or
// no huge page is free, the kernel uses small pages, and nothing fails.
func adviseHugePages[T any](s []T) {
	if len(s) == 0 {
		return
	}
	base := unsafe.Pointer(unsafe.SliceData(s))
	start := uintptr(base)
	end := start + uintptr(len(s))*unsafe.Sizeof(s[0])
	lo, hi := (start+hugePage-1)&^(hugePage-1), end&^(hugePage-1)
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, lo-start)), hi-lo), syscall.MADV_HUGEPAGE)
}
