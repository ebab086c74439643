package xsk

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Desc is one RX or TX descriptor: the UMEM address where the frame's data
// starts and its length. It has the layout of struct xdp_desc.
type Desc = unix.XDPDesc

// ringHeader points into the memory a ring shares with the kernel.
type ringHeader struct {
	producer *atomic.Uint32 // written by the producing side only
	consumer *atomic.Uint32 // written by the consuming side only
	flags    *atomic.Uint32 // written by the kernel: XDP_RING_NEED_WAKEUP
	mask     uint32
	size     uint32
}

// mapHeader builds a ringHeader over mem using the kernel's offsets.
//
// mem is either a mapping of the socket's ring (see mmapRing) or, for
// [NewPair], ordinary Go memory laid out the same way.
func mapHeader(mem []byte, off unix.XDPRingOffset, size uint32) ringHeader {
	base := unsafe.Pointer(unsafe.SliceData(mem))
	return ringHeader{
		producer: (*atomic.Uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*atomic.Uint32)(unsafe.Add(base, off.Consumer)),
		flags:    (*atomic.Uint32)(unsafe.Add(base, off.Flags)),
		mask:     size - 1,
		size:     size,
	}
}

func ringEntries[T any](mem []byte, off unix.XDPRingOffset, size uint32) []T {
	base := unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), off.Desc)
	return unsafe.Slice((*T)(base), size)
}

// prodRing is a ring this process produces into and the kernel consumes
// from: the fill ring (frame addresses) and the TX ring (descriptors).
type prodRing[T any] struct {
	ringHeader
	entries []T
	// cachedProd is the authoritative producer index: only we write it.
	cachedProd uint32
	// cachedCons is the last consumer index seen plus size, so that
	// cachedCons-cachedProd is the number of free entries.
	cachedCons uint32
}

func newProdRing[T any](mem []byte, off unix.XDPRingOffset, size uint32) prodRing[T] {
	r := prodRing[T]{ringHeader: mapHeader(mem, off, size), entries: ringEntries[T](mem, off, size)}
	r.cachedProd = r.producer.Load()
	r.cachedCons = r.consumer.Load() + size
	return r
}

// reserve returns how many of n entries are free starting at cachedProd,
// loading the kernel's consumer index only if the cached one is short.
func (r *prodRing[T]) reserve(n uint32) uint32 {
	free := r.cachedCons - r.cachedProd
	if free < n {
		r.cachedCons = r.consumer.Load() + r.size
		free = r.cachedCons - r.cachedProd
	}
	return min(n, free)
}

// set writes entry i of the current reservation.
func (r *prodRing[T]) set(i uint32, v T) { r.entries[(r.cachedProd+i)&r.mask] = v }

// submit publishes n written entries to the kernel (one atomic store).
func (r *prodRing[T]) submit(n uint32) {
	r.cachedProd += n
	r.producer.Store(r.cachedProd)
}

// outstanding is the number of entries the kernel has not consumed yet.
func (r *prodRing[T]) outstanding() uint32 { return r.cachedProd - r.consumer.Load() }

func (r *prodRing[T]) needsWakeup() bool { return r.flags.Load()&unix.XDP_RING_NEED_WAKEUP != 0 }

// consRing is a ring the kernel produces into and this process consumes
// from: the RX ring (descriptors) and the completion ring (addresses).
type consRing[T any] struct {
	ringHeader
	entries []T
	// cachedCons is the authoritative consumer index: only we write it.
	cachedCons uint32
	// cachedProd is the last producer index seen.
	cachedProd uint32
}

func newConsRing[T any](mem []byte, off unix.XDPRingOffset, size uint32) consRing[T] {
	r := consRing[T]{ringHeader: mapHeader(mem, off, size), entries: ringEntries[T](mem, off, size)}
	r.cachedCons = r.consumer.Load()
	r.cachedProd = r.producer.Load()
	return r
}

// peek returns how many of n entries are ready starting at cachedCons,
// loading the kernel's producer index only if the cached one is short.
func (r *consRing[T]) peek(n uint32) uint32 {
	avail := r.cachedProd - r.cachedCons
	if avail < n {
		r.cachedProd = r.producer.Load()
		avail = r.cachedProd - r.cachedCons
	}
	return min(n, avail)
}

func (r *consRing[T]) get(i uint32) T { return r.entries[(r.cachedCons+i)&r.mask] }

// release hands n consumed entries back to the kernel (one atomic store).
func (r *consRing[T]) release(n uint32) {
	r.cachedCons += n
	r.consumer.Store(r.cachedCons)
}
