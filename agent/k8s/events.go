package k8s

// Following the API: the informer factory each of Run and RunPolicy
// starts, and the batching of its events into debounced builds.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// events folds the API events of one informer factory into batches for
// one loop. The informers' handlers note each event (changed), from their
// goroutines; the loop (run) waits the debounce from a batch's first
// event, takes the batch and builds once.
type events struct {
	mu      sync.Mutex    // guards pending
	pending batch         // written by changed, taken by run
	kick    chan struct{} // cap 1: a batch is pending; sent by changed, received by run

	// handlers are the handlers' registrations, done once each has been
	// handed its informer's initial list. Appended by handle before the
	// informers start, read by follow.
	handlers []cache.DoneChecker
}

// batch is the API events noticed since the last build: the times the
// informers delivered the first and the last (zero when none).
type batch struct {
	first, last time.Time
}

func newEvents() *events { return &events{kick: make(chan struct{}, 1)} }

// changed notes an API event that may change what is built. Called by the
// informers' handlers, from their goroutines.
func (e *events) changed() {
	e.mu.Lock()
	now := time.Now() // under mu, so that first <= last whatever the goroutine
	if e.pending.first.IsZero() {
		e.pending.first = now
	}
	e.pending.last = now
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// synced notes the informers' caches syncing as an event when none is
// pending, so that the loop builds once from the caches even when they
// hold nothing to add.
func (e *events) synced() {
	e.mu.Lock()
	none := e.pending.first.IsZero()
	e.mu.Unlock()
	if none {
		e.changed()
	}
}

// run calls build for each batch of events, debounce after the batch's
// first event, until ctx is done. build is called on run's goroutine;
// events arriving meanwhile are batched for the next call.
func (e *events) run(ctx context.Context, debounce time.Duration, build func(batch)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		}
		// The batch's first event is in: give the rest of the burst
		// debounce to arrive, then build once.
		select {
		case <-ctx.Done():
			return
		case <-time.After(debounce):
		}
		// Drop the kicks of the events during the wait, then take the
		// batch: in that order, an event noted after the take has
		// kicked again, and one noted in between kicks for a batch
		// already taken, which the next round skips.
		select {
		case <-e.kick:
		default:
		}
		e.mu.Lock()
		b := e.pending
		e.pending = batch{}
		e.mu.Unlock()
		if b.first.IsZero() {
			// A kick whose batch the last round took: nothing new. (A
			// change in the store whose handler has not run yet comes
			// with its own kick and times.)
			continue
		}
		build(b)
	}
}

// handle adds to inf a handler that notes in e every add and delete, and
// every update but those where same(old, new): a resync, or a change to
// fields nothing built from T reads.
func handle[T any](e *events, kind string, inf cache.SharedIndexInformer, same func(old, new T) bool) error {
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { e.changed() },
		UpdateFunc: func(old, new any) {
			o, ok1 := old.(T)
			n, ok2 := new.(T)
			if ok1 && ok2 && same(o, n) {
				return
			}
			e.changed()
		},
		DeleteFunc: func(any) { e.changed() },
	})
	if err != nil {
		return fmt.Errorf("%s informer: %w", kind, err)
	}
	e.handlers = append(e.handlers, reg.HasSyncedChecker())
	return nil
}

// follow starts a shared informer factory with the informers add adds to
// it (with handle, their events noted in e), waits until their caches have
// synced and their handlers have noted the initial lists, and then builds
// each batch of e until ctx is done, when it stops the informers. It
// returns nil when ctx is done, sync or not.
func (s *Source) follow(ctx context.Context, e *events, add func(informers.SharedInformerFactory) error, build func(batch)) error {
	ctx, cancel := context.WithCancel(ctx)
	f := informers.NewSharedInformerFactoryWithOptions(s.client, s.o.Resync, informers.WithTransform(slim))
	defer func() {
		cancel()
		f.Shutdown() // waits for the informers' goroutines, which stop with ctx
	}()
	if err := add(f); err != nil {
		return err
	}
	f.Start(ctx.Done())
	if !cache.WaitFor(ctx, "", e.handlers...) {
		return nil // ctx is done
	}
	s.log.Debug("Kubernetes caches synced")
	e.synced()
	e.run(ctx, s.o.Debounce, build)
	return nil
}
