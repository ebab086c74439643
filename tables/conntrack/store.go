package conntrack

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Stores that publish nothing by themselves.
//
// sync/atomic's Store is an XCHG on amd64: a full barrier, which waits for
// every earlier store to reach the cache, misses included. Insert writes a
// record's keys and label, then its live word, which is what readers check
// (see the package doc), then the slots that lead readers to the record.
// Only the live word's store needs to be atomic. The others can be plain
// stores, which the store buffer absorbs: x86 makes stores visible in
// program order (the keys before the live word, the slots after it), and
// the Go compiler does not move a store across an atomic operation. A
// reader may then load a word while it is being written plainly; in Go a
// word-sized racy load returns the old or the new value, never a mix, and
// the reader discards what it read unless the live word, loaded after,
// still shows the connection it started with.
//
// Under the race detector, and on other architectures (weaker ordering),
// they stay atomic stores.

func storeRelaxed64(p *atomic.Uint64, v uint64) {
	if relaxedStores {
		*(*uint64)(unsafe.Pointer(p)) = v
		return
	}
	p.Store(v)
}

func storeRelaxed32(p *atomic.Uint32, v uint32) {
	if relaxedStores {
		*(*uint32)(unsafe.Pointer(p)) = v
		return
	}
	p.Store(v)
}

// spinLock is a shard's writer lock. Writers hold it for a few hundred
// nanoseconds at most, and 256 shards make waiting rare, so it is a word
// taken by CAS and, on amd64 outside the race detector, released by a
// plain store: x86 keeps every load and store of the critical section
// before it, and the Go compiler does not move them past it (see above).
// sync.Mutex releases with a LOCK XADD, a full barrier that waits for the
// critical section's stores; an insert takes and releases two locks, so
// this saves it two full barriers.
// A writer that finds the lock taken spins briefly, then yields its
// processor between tries, so a holder that was preempted gets to run.
type spinLock struct{ v atomic.Uint32 }

func (l *spinLock) TryLock() bool { return l.v.Load() == 0 && l.v.CompareAndSwap(0, 1) }

func (l *spinLock) Lock() {
	for spins := 0; !l.TryLock(); spins++ {
		if spins >= spinsBeforeYield {
			runtime.Gosched()
		}
	}
}

func (l *spinLock) Unlock() { storeRelaxed32(&l.v, 0) }

// spinsBeforeYield is how many times Lock tries before it yields: about a
// microsecond, longer than a writer holds a shard.
const spinsBeforeYield = 100
