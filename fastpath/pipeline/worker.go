package pipeline

import (
	"sync/atomic"

	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
)

// Worker forwards the frames of one queue index of every port: it owns
// socket Worker.id of each port (RX and TX), so no two workers ever touch
// the same ring or UMEM.
type Worker struct {
	id  int
	dp  *Dataplane
	fwd forwarder

	// Counters of outcomes; written by this worker, read by anyone.
	Counters stats.Counters

	// seen is the port-set generation this worker has switched to; the
	// control plane waits on it before closing a removed port's sockets.
	seen atomic.Uint64

	// Everything below is owned by the worker goroutine and rebuilt only
	// when the port set changes.
	set     *portSet
	active  []*Port          // ports with a socket for this worker
	pending [][]xsk.Desc     // by destination port ID: frames to transmit
	reasons [][]stats.Reason // by destination port ID: what to count once sent
	touched []uint16         // port IDs with pending frames
	rx      []xsk.Desc       // RX batch
	rxCount []uint64         // by port ID, not yet published
	txCount []uint64         // by port ID, not yet published
	batch   int
}

func newWorker(dp *Dataplane, id int) *Worker {
	return &Worker{id: id, dp: dp, fwd: newForwarder(dp.cfg.Gateway), batch: dp.cfg.Batch,
		rx: make([]xsk.Desc, dp.cfg.Batch)}
}

// switchTo adopts a new port set. It allocates; it runs only when the
// control plane has changed the ports, never per packet.
func (w *Worker) switchTo(ps *portSet) {
	w.set = ps
	w.active = w.active[:0]
	n := len(ps.ports)
	w.pending = make([][]xsk.Desc, n)
	w.reasons = make([][]stats.Reason, n)
	w.rxCount, w.txCount = make([]uint64, n), make([]uint64, n)
	for id, p := range ps.ports {
		if p == nil {
			continue
		}
		w.active = append(w.active, p)
		// Carry the published totals over, so counts never go back.
		w.rxCount[id], w.txCount[id] = p.counters[w.id].rx.Load(), p.counters[w.id].tx.Load()
		w.pending[id] = make([]xsk.Desc, 0, w.batch)
		w.reasons[id] = make([]stats.Reason, 0, w.batch)
	}
	w.touched = make([]uint16, 0, n)
	w.seen.Store(ps.gen)
}

// step makes one pass over this worker's sockets: complete, receive a
// batch, process, refill, then transmit everything queued. It returns how
// much work it found (0 means the worker may sleep).
func (w *Worker) step() int {
	if ps := w.dp.ports.Load(); ps != w.set {
		w.switchTo(ps)
	}
	eps := w.dp.endpoints.Load()
	work := 0
	for _, p := range w.active {
		s := p.socks[w.id]
		s.Complete()
		if s.Flush() {
			work++ // frames still waiting to be sent: not idle
		}
		n := s.Receive(w.rx)
		if n == 0 {
			continue
		}
		work += n
		w.rxCount[p.ID] += uint64(n)
		for _, d := range w.rx[:n] {
			frame := s.Frame(d)
			v, out, length, reason := w.fwd.process(frame, eps)
			switch v {
			case vDrop:
				w.Counters.Inc(reason)
				s.Free(d.Addr)
			case vReply:
				w.queue(p.ID, xsk.Desc{Addr: d.Addr, Len: length}, reason)
			case vForward:
				if out == p.ID {
					w.queue(out, xsk.Desc{Addr: d.Addr, Len: length}, reason)
					continue
				}
				w.copyTo(out, frame[:length], reason)
				s.Free(d.Addr)
			}
		}
		s.Refill()
	}
	w.flush()
	if work > 0 {
		w.publish()
	}
	return work
}

// copyTo copies frame into a chunk of port out's socket and queues it.
func (w *Worker) copyTo(out uint16, frame []byte, reason stats.Reason) {
	if int(out) >= len(w.set.ports) || w.set.ports[out] == nil {
		w.Counters.Inc(stats.NoPort)
		return
	}
	ds := w.set.ports[out].socks[w.id]
	addr, ok := ds.Alloc()
	if !ok {
		ds.Complete()
		if addr, ok = ds.Alloc(); !ok {
			w.Counters.Inc(stats.TxNoFrame)
			return
		}
	}
	n := copy(ds.Buffer(addr), frame)
	w.queue(out, xsk.Desc{Addr: addr, Len: uint32(n)}, reason)
}

// queue adds a frame owned by port id's socket to its pending TX batch,
// transmitting the batch first if it is full.
func (w *Worker) queue(id uint16, d xsk.Desc, reason stats.Reason) {
	q := w.pending[id]
	if len(q) == 0 {
		w.touched = append(w.touched, id)
	} else if len(q) == cap(q) {
		w.transmit(id)
		q = w.pending[id]
	}
	w.pending[id] = append(q, d)
	w.reasons[id] = append(w.reasons[id], reason)
}

// transmit puts port id's pending frames on its TX ring, counting each
// frame sent under its reason and each frame the ring had no room for as
// TxRingFull (and freeing it).
func (w *Worker) transmit(id uint16) {
	q, rs := w.pending[id], w.reasons[id]
	s := w.set.ports[id].socks[w.id]
	sent := s.Transmit(q)
	for _, r := range rs[:sent] {
		w.Counters.Inc(r)
	}
	for _, d := range q[sent:] {
		w.Counters.Inc(stats.TxRingFull)
		s.Free(d.Addr)
	}
	w.txCount[id] += uint64(sent)
	w.pending[id], w.reasons[id] = q[:0], rs[:0]
}

func (w *Worker) flush() {
	for _, id := range w.touched {
		if len(w.pending[id]) > 0 {
			w.transmit(id)
		}
	}
	w.touched = w.touched[:0]
}

// publish makes the worker's counters visible to other goroutines.
func (w *Worker) publish() {
	w.Counters.Publish()
	for _, p := range w.active {
		c := &p.counters[w.id]
		c.rx.Store(w.rxCount[p.ID])
		c.tx.Store(w.txCount[p.ID])
	}
}
