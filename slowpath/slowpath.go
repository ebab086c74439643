package slowpath

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
)

// Device is what the slow path needs of the TAP: batched frame I/O.
// *tap.Device implements it; tests use an in-memory one.
type Device interface {
	// ReadBatch blocks until at least one frame is ready, reads frames
	// into bufs (their lengths into lens) and returns how many; after
	// Close it returns an error.
	ReadBatch(bufs [][]byte, lens []int) (int, error)
	// WriteBatch writes frames, skipping (and counting as failed) those
	// the device refuses; err means the device is unusable.
	WriteBatch(frames [][]byte) (sent, failed int, err error)
	Close() error
}

// loops are the slow path's two goroutines over one device and one host
// port.
type loops struct {
	hp    *pipeline.HostPort
	dev   Device
	batch int
	log   *slog.Logger

	stop    chan struct{} // closed by close
	stopped sync.WaitGroup
}

// startLoops runs the reader and the writer.
func startLoops(hp *pipeline.HostPort, dev Device, batch int, log *slog.Logger) *loops {
	l := &loops{hp: hp, dev: dev, batch: batch, log: log, stop: make(chan struct{})}
	l.stopped.Add(2)
	go func() { defer l.stopped.Done(); l.readLoop() }()
	go func() { defer l.stopped.Done(); l.writeLoop() }()
	return l
}

// close stops both goroutines and closes the device (which is what
// unblocks the reader).
func (l *loops) close() error {
	close(l.stop)
	err := l.dev.Close()
	l.stopped.Wait()
	return err
}

func (l *loops) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// readLoop is the TAP reader goroutine: host → pods.
func (l *loops) readLoop() {
	r := newReader(l.hp, l.dev, l.batch)
	for {
		if err := r.once(); err != nil {
			if l.stopping() || errors.Is(err, os.ErrClosed) {
				return
			}
			// Not expected from a TAP; do not spin on it.
			l.log.Error("slow path: read from the TAP", "err", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// reader reads a batch from the TAP into its own buffers, picks a worker
// per frame by flow (so a flow keeps its order), copies each frame into
// that worker's queue, then publishes each touched queue once and wakes
// its worker if it sleeps. A full queue drops the frame
// (HostRxQueueFull). Everything is allocated by newReader.
type reader struct {
	hp      *pipeline.HostPort
	dev     Device
	bufs    [][]byte
	lens    []int
	p       packet.Parsed
	workers int
}

func newReader(hp *pipeline.HostPort, dev Device, batch int) *reader {
	r := &reader{hp: hp, dev: dev, bufs: make([][]byte, batch), lens: make([]int, batch), workers: hp.Workers()}
	slot := hp.FromHost(0).SlotSize()
	for i := range r.bufs {
		r.bufs[i] = make([]byte, slot)
	}
	return r
}

// once reads and distributes one batch.
func (r *reader) once() error {
	n, err := r.dev.ReadBatch(r.bufs, r.lens)
	if err != nil {
		return err
	}
	hp, c := r.hp, &r.hp.ReaderCounters
	var touched uint64 // bit w: worker w's queue has new frames
	for i := range n {
		frame := r.bufs[i][:r.lens[i]]
		w := 0
		if r.workers > 1 {
			w = int(flowHash(frame, &r.p) % uint64(r.workers))
		}
		if !hp.FromHost(w).Push(frame) {
			c.Inc(stats.HostRxQueueFull)
			continue
		}
		c.Inc(stats.HostRx)
		touched |= 1 << w
	}
	for w := 0; touched != 0; w, touched = w+1, touched>>1 {
		if touched&1 != 0 {
			hp.FromHost(w).Flush()
			hp.Wake(w)
		}
	}
	c.Publish()
	return nil
}

// flowHash hashes a frame's addresses, protocol and ports, so that the
// frames of one flow go to one worker. Frames that do not decode hash to
// 0 (the worker counts them as malformed).
func flowHash(frame []byte, p *packet.Parsed) uint64 {
	if packet.Decode(frame, p) != packet.OK || !p.Src.IsValid() {
		return 0
	}
	s, d := p.Src.As16(), p.Dst.As16()
	h := binary.LittleEndian.Uint64(s[0:8]) ^ binary.LittleEndian.Uint64(s[8:16])*0x9E3779B97F4A7C15
	h ^= (binary.LittleEndian.Uint64(d[0:8]) ^ binary.LittleEndian.Uint64(d[8:16])) * 0xC2B2AE3D27D4EB4F
	h ^= uint64(p.IPProto)<<32 | uint64(p.SrcPort)<<16 | uint64(p.DstPort)
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	return h ^ h>>32
}

// writeLoop is the TAP writer goroutine: pods → host. With nothing queued
// it parks until a worker rings (HostPort.WaitToHost).
func (l *loops) writeLoop() {
	w := newWriter(l.hp, l.dev, l.batch)
	for {
		work, err := w.once()
		if err != nil {
			if !l.stopping() && !errors.Is(err, os.ErrClosed) {
				l.log.Error("slow path: write to the TAP", "err", err)
			}
			return
		}
		if work == 0 {
			if l.stopping() {
				return
			}
			l.hp.WaitToHost(l.stop, nil)
		}
	}
}

// writer takes each worker's queue in turn and writes up to a batch of its
// frames to the TAP straight from the queue's slots, then releases them.
type writer struct {
	hp     *pipeline.HostPort
	dev    Device
	batch  int
	frames [][]byte
}

func newWriter(hp *pipeline.HostPort, dev Device, batch int) *writer {
	return &writer{hp: hp, dev: dev, batch: batch, frames: make([][]byte, 0, batch)}
}

// once makes one pass over the queues and returns how many frames it took.
// An error means the device is unusable.
func (w *writer) once() (int, error) {
	hp, c := w.hp, &w.hp.WriterCounters
	work := 0
	defer c.Publish()
	for i := range hp.Workers() {
		q := hp.ToHost(i)
		n := q.Peek(w.batch)
		if n == 0 {
			continue
		}
		w.frames = w.frames[:0]
		for j := range n {
			w.frames = append(w.frames, q.Frame(j))
		}
		sent, _, err := w.dev.WriteBatch(w.frames)
		q.Release(n)
		work += n
		c.Add(stats.HostTx, uint64(sent))
		c.Add(stats.HostTxError, uint64(n-sent)) // refused, or not written after a fatal error
		if err != nil {
			return work, err
		}
	}
	return work, nil
}
