// Package snapshot publishes immutable table snapshots from one writer to
// many lock-free readers.
//
// Every table under tables/ is built whole by the agent, stamped with a
// generation number, and never changed after it is published. A
// [Pointer] holds the current snapshot of one table: workers call Load once
// per batch (one atomic load, no lock, no allocation) and use what they got
// until the batch ends; the writer calls Store with the next snapshot. The
// old snapshot stays valid for as long as a worker holds it; the garbage
// collector frees it after the last worker lets go.
//
// What Pointer adds to a bare atomic.Pointer is the two promises every
// table needs and every caller would otherwise re-check: Load never
// returns nil, and generations only move forward, so a writer that
// publishes a stale build (two rebuilds finishing out of order, a retry of
// an old input) gets an error instead of silently rolling the dataplane
// back.
package snapshot

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Versioned is what a snapshot type must provide: the generation it was
// built for.
type Versioned interface {
	Generation() uint64
}

// Pointer holds the current snapshot *T of one table. PT is *T, spelled
// out so that the generation can be read through it:
//
//	var policies snapshot.Pointer[policy.Table, *policy.Table]
//
// The zero Pointer holds nothing; call Init before the first Load. A
// Pointer must not be copied after first use.
type Pointer[T any, PT interface {
	*T
	Versioned
}] struct {
	p atomic.Pointer[T] // written by Init and Store, read by anyone
}

// ErrStale is wrapped by the error Store returns for a snapshot whose
// generation is not newer than the current one.
var ErrStale = errors.New("stale snapshot")

// Init publishes the first snapshot, whatever its generation, replacing
// any other. It is for start-up; later snapshots go through Store.
func (p *Pointer[T, PT]) Init(t PT) {
	if t == nil {
		panic("snapshot: Init with nil")
	}
	p.p.Store((*T)(t))
}

// Load returns the current snapshot. Readers call it once per batch.
func (p *Pointer[T, PT]) Load() PT { return PT(p.p.Load()) }

// Store publishes t if its generation is newer than the current
// snapshot's, and reports ErrStale otherwise. It is safe against
// concurrent Stores (the newest wins), though tables have one writer.
func (p *Pointer[T, PT]) Store(t PT) error {
	if t == nil {
		return errors.New("snapshot: store nil")
	}
	for {
		old := p.p.Load()
		if old != nil {
			if og, ng := PT(old).Generation(), t.Generation(); ng <= og {
				return fmt.Errorf("snapshot: generation %d after %d: %w", ng, og, ErrStale)
			}
		}
		if p.p.CompareAndSwap(old, (*T)(t)) {
			return nil
		}
	}
}
