package pipeline

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/ringnet/ringnet/fastpath/stats"
)

// SlowPathConfig turns on the dataplane's side of the slow path: the punt
// list's actions (instead of dropping), ICMP errors, and frames from the
// host. The zero value of each field is a default.
type SlowPathConfig struct {
	// QueueLen is the number of frames each worker's queue to the host and
	// from the host holds (default 1024, a power of two).
	QueueLen int
	// Limits overrides the punt list's default token bucket of the classes
	// it names (see PuntClass.DefaultLimit). The limits are per worker.
	Limits map[PuntClass]Limit
	// Name is the host port's name in Stats, the TAP's (default "host").
	Name string
}

// HostPortID is the ID under which Stats reports the host port.
const HostPortID = 0xffff

// HostPort is the dataplane's port to the host: instead of an AF_XDP socket
// per worker, a pair of FrameQueues per worker, which the slow path
// (package slowpath) drains into the TAP and fills from it.
//
//	worker i --ToHost(i)--> slow path writer --> TAP --> host stack
//	host stack --> TAP --> slow path reader --FromHost(i)--> worker i
//
// Each queue has exactly one producer and one consumer goroutine. The slow
// path's reader and writer are one goroutine each; they count their frames
// in ReaderCounters and WriterCounters, which Dataplane.Stats adds in.
type HostPort struct {
	d        *Dataplane
	name     string
	toHost   []*FrameQueue
	fromHost []*FrameQueue
	counters []portCounters // by worker: frames taken from / queued to the host

	// writerParked is set by the writer before it sleeps; a worker that
	// flushed frames to the host and finds it set clears it and rings bell.
	writerParked atomic.Bool
	bell         chan struct{} // capacity 1; never closed

	// ReaderCounters is written by the slow path's TAP reader only,
	// WriterCounters by its TAP writer only; anyone may Load.
	ReaderCounters, WriterCounters stats.Counters
}

// EnableSlowPath makes the host port: the per-worker queues and token
// buckets. Call it once, before Start; the slow path then attaches to the
// returned HostPort, and SetHost must be called before frames are punted
// (until then the punt list drops, as without a slow path).
func (d *Dataplane) EnableSlowPath(cfg SlowPathConfig) (*HostPort, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.started:
		return nil, errors.New("dataplane: enable the slow path before Start")
	case d.hostPort != nil:
		return nil, errors.New("dataplane: slow path already enabled")
	}
	n := cfg.QueueLen
	if n == 0 {
		n = 1024
	}
	if n < 2 || bits.OnesCount(uint(n)) != 1 {
		return nil, fmt.Errorf("dataplane: slow path queue length %d is not a power of two", n)
	}
	for c := range cfg.Limits {
		if c >= NumPuntClasses {
			return nil, fmt.Errorf("dataplane: no punt class %d", c)
		}
	}
	if cfg.Name == "" {
		cfg.Name = "host"
	}
	hp := &HostPort{d: d, name: cfg.Name, counters: make([]portCounters, len(d.workers)), bell: make(chan struct{}, 1)}
	slot := int(d.cfg.XSK.FrameSize)
	for _, w := range d.workers {
		to, err := NewFrameQueue(n, slot)
		if err != nil {
			return nil, fmt.Errorf("dataplane: %w", err)
		}
		from, err := NewFrameQueue(n, slot)
		if err != nil {
			return nil, fmt.Errorf("dataplane: %w", err)
		}
		hp.toHost = append(hp.toHost, to)
		hp.fromHost = append(hp.fromHost, from)
		for c := range NumPuntClasses {
			l, ok := cfg.Limits[c]
			if !ok {
				l = c.DefaultLimit()
			}
			w.fwd.buckets[c] = newBucket(l)
		}
	}
	flows := new(hostFlows)
	for i, w := range d.workers {
		w.toHost, w.fromHost = hp.toHost[i], hp.fromHost[i]
		w.fwd.hflows = flows
	}
	d.hostPort = hp
	return hp, nil
}

// SetHost publishes what the workers know of the host (see Host). The slow
// path calls it at start and whenever the node's addresses change; workers
// pick it up at their next batch.
func (d *Dataplane) SetHost(h Host) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hostPort == nil {
		return errors.New("dataplane: SetHost without a slow path (EnableSlowPath)")
	}
	d.hostGen++
	t, err := compileHost(h, d.cfg.Gateway, d.hostGen)
	if err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	d.host.Store(t)
	return nil
}

// HostPort returns the host port, or nil without a slow path.
func (d *Dataplane) HostPort() *HostPort { return d.hostPort }

// Workers is the number of workers, and so of queue pairs.
func (h *HostPort) Workers() int { return len(h.toHost) }

// ToHost is worker i's queue to the host; the slow path's writer is its
// consumer.
func (h *HostPort) ToHost(i int) *FrameQueue { return h.toHost[i] }

// FromHost is worker i's queue from the host; the slow path's reader is its
// producer.
func (h *HostPort) FromHost(i int) *FrameQueue { return h.fromHost[i] }

// Wake wakes worker i if it sleeps. The reader calls it after flushing
// frames to FromHost(i). It costs a syscall only when the worker sleeps.
func (h *HostPort) Wake(i int) {
	w := h.d.workers[i]
	if !w.asleep.Load() {
		return
	}
	h.d.wakeMu.RLock()
	if fd := w.wakeFD.Load(); fd >= 0 {
		writeEventFD(int(fd))
	}
	h.d.wakeMu.RUnlock()
}

// notifyWriter is called by a worker after it flushed frames to the host.
func (h *HostPort) notifyWriter() {
	if h.writerParked.Load() && h.writerParked.CompareAndSwap(true, false) {
		select {
		case h.bell <- struct{}{}:
		default:
		}
	}
}

// WaitToHost blocks the slow path's writer until a worker may have flushed
// frames to a ToHost queue, stop is closed, or timer fires (the caller
// arms it; it may be nil). It returns at once if frames are pending.
//
// The writer announces that it parks, then looks at the queues once more,
// and a worker flushes, then looks at the announcement: with sequentially
// consistent atomics one of the two sees the other, so no wakeup is lost.
func (h *HostPort) WaitToHost(stop <-chan struct{}, timer <-chan time.Time) {
	h.writerParked.Store(true)
	for _, q := range h.toHost {
		if q.Pending() {
			h.writerParked.Store(false)
			return
		}
	}
	select {
	case <-h.bell:
	case <-stop:
	case <-timer:
	}
	h.writerParked.Store(false)
}

// stats are the host port's counters in the form of a pod port's.
func (h *HostPort) stats() PortStats {
	ps := PortStats{ID: HostPortID, Ifname: h.name}
	for i := range h.counters {
		ps.RxFrames += h.counters[i].rx.Load()
		ps.TxFrames += h.counters[i].tx.Load()
	}
	return ps
}
