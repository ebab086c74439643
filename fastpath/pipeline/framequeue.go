package pipeline

import (
	"fmt"
	"math/bits"
	"sync/atomic"
)

// FrameQueue is a bounded single-producer, single-consumer queue of frames
// between a worker and the slow path's goroutines. It owns its memory: Len
// slots of SlotSize bytes, allocated once by NewFrameQueue. Push copies a
// frame into the next free slot; the consumer reads the frame in its slot
// and releases the slot when done, so nothing is allocated per frame and no
// frame memory is shared with a UMEM.
//
//	producer: Push, Push, ..., Flush   (one atomic store per batch)
//	consumer: Peek, Frame(0..n-1), Release(n)   (one atomic load and one store per batch)
//
// Each side keeps its own index and a cached copy of the other side's, and
// reads the other side's index only when the cached value says the batch
// does not fit, as the AF_XDP rings do (package xsk). The two indexes live
// on separate cache lines.
//
// A full queue makes Push fail: the caller counts the frame and drops it.
// Nothing ever blocks.
type FrameQueue struct {
	slots    []byte   // Len*SlotSize bytes; slot i is owned by whichever side's range holds i
	lens     []uint32 // frame length per slot; written by the producer before Flush
	slotSize int
	mask     uint32
	_        [64]byte

	// The two shared indexes, each on its own cache line, each written by
	// one side once per batch and read by the other only when its cached
	// copy runs short.
	tail atomic.Uint32 // published end of the filled slots; written by the producer
	_    [60]byte
	head atomic.Uint32 // first slot not yet released; written by the consumer
	_    [60]byte

	// Each side's private state, on lines of its own, so that the per-frame
	// updates never invalidate a line the other side reads.
	prodTail  uint32 // producer: end of the filled slots, published or not
	headCache uint32 // producer: last head seen
	_         [56]byte
	consHead  uint32 // consumer: == head, without the atomic load
	tailCache uint32 // consumer: last tail seen
	_         [56]byte
}

// NewFrameQueue makes a queue of n slots (a power of two) of slotSize bytes.
func NewFrameQueue(n, slotSize int) (*FrameQueue, error) {
	if n < 2 || n > 1<<20 || bits.OnesCount(uint(n)) != 1 {
		return nil, fmt.Errorf("frame queue: length %d is not a power of two in [2, 2^20]", n)
	}
	if slotSize < 64 || slotSize > 1<<16 {
		return nil, fmt.Errorf("frame queue: slot size %d out of range [64, 65536]", slotSize)
	}
	return &FrameQueue{
		slots:    make([]byte, n*slotSize),
		lens:     make([]uint32, n),
		slotSize: slotSize,
		mask:     uint32(n - 1),
	}, nil
}

// Len is the number of slots; SlotSize the largest frame a slot holds.
func (q *FrameQueue) Len() int      { return len(q.lens) }
func (q *FrameQueue) SlotSize() int { return q.slotSize }

func (q *FrameQueue) slot(i uint32) []byte {
	off := int(i&q.mask) * q.slotSize
	return q.slots[off : off+q.slotSize : off+q.slotSize]
}

// Push copies frame into the next free slot. It reports false, copying
// nothing, when the queue is full or the frame is larger than a slot. The
// frame becomes visible to the consumer at the next Flush. Producer only.
func (q *FrameQueue) Push(frame []byte) bool {
	if len(frame) > q.slotSize {
		return false
	}
	if q.prodTail-q.headCache > q.mask {
		q.headCache = q.head.Load()
		if q.prodTail-q.headCache > q.mask {
			return false
		}
	}
	copy(q.slot(q.prodTail), frame)
	q.lens[q.prodTail&q.mask] = uint32(len(frame))
	q.prodTail++
	return true
}

// Flush publishes every frame pushed since the last Flush and reports
// whether there were any. Producer only.
func (q *FrameQueue) Flush() bool {
	if q.prodTail == q.tail.Load() {
		return false
	}
	q.tail.Store(q.prodTail)
	return true
}

// Peek returns how many frames, at most max, are ready for the consumer.
// Consumer only.
func (q *FrameQueue) Peek(max int) int {
	n := q.tailCache - q.consHead
	if int(n) < max {
		q.tailCache = q.tail.Load()
		n = q.tailCache - q.consHead
	}
	return min(int(n), max)
}

// Frame returns the i-th ready frame (i < the last Peek), with the slot's
// capacity: the consumer may rewrite and grow it in place up to SlotSize
// until it releases the slot. Consumer only.
func (q *FrameQueue) Frame(i int) []byte {
	idx := q.consHead + uint32(i)
	return q.slot(idx)[:q.lens[idx&q.mask]]
}

// Release hands the first n ready slots back to the producer. Consumer only.
func (q *FrameQueue) Release(n int) {
	if n == 0 {
		return
	}
	q.consHead += uint32(n)
	q.head.Store(q.consHead)
}

// Pending reports whether published frames are waiting for the consumer.
// Consumer only (it is how a consumer checks before going to sleep).
func (q *FrameQueue) Pending() bool { return q.tail.Load() != q.consHead }
