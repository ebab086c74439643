package pipeline

import (
	"sync/atomic"
	"time"

	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/route"
)

// Worker forwards the frames of one queue index of every port: it owns
// socket Worker.id of each port (RX and TX), so no two workers ever touch
// the same ring or UMEM. With a slow path it also owns one queue from the
// host (it consumes) and one queue to the host (it produces).
//
// A worker also keeps time, for the agent's busy ratio (BusyTime): step
// reads the monotonic clock once, at its start, and charges the time since
// the previous step's start (that step, plus the poll(2) sleep or the idle
// spin after it) to total, and to busy as well if that step found work.
// The sums live in worker-owned fields and are published with two atomic
// stores in publish, with the counters; a step that found no work
// publishes them alone, so total keeps moving while the worker idles. The
// cost is one clock read and two stores per step, nothing per frame.
type Worker struct {
	id  int
	dp  *Dataplane
	fwd forwarder

	// Counters of outcomes; written by this worker, read by anyone.
	Counters stats.Counters

	// flowRing holds the flow events this worker wrote (flows.go).
	flowRing flowRing

	// seen is the port-set generation this worker has switched to; the
	// control plane waits on it before closing a removed port's sockets.
	seen atomic.Uint64

	// asleep is set by the worker while it sleeps (or is about to) in
	// poll(2); the slow path reads it to decide whether a frame it queued
	// needs a wakeup. wakeFD is the worker's eventfd, -1 when not running;
	// set by Start and Close under Dataplane.wakeMu.
	asleep atomic.Bool
	wakeFD atomic.Int32

	// Slow path queues (nil without one): fromHost is consumed by this
	// worker, toHost produced by it. Set before Start, then fixed.
	fromHost, toHost *FrameQueue
	hostRx, hostTx   uint64 // frames taken from / queued to the host, not yet published
	outerID          uint16 // IPv4 identification of the next outer header this worker writes

	// Everything below is owned by the worker goroutine and rebuilt only
	// when the port set changes.
	set     *portSet
	active  []*Port          // ports with a socket for this worker
	pending [][]xsk.Desc     // by destination port ID: frames to transmit
	reasons [][]stats.Reason // by destination port ID: what to count once sent
	touched []uint16         // port IDs with pending frames
	rx      []xsk.Desc       // RX batch
	// The RX batch's connections, looked up ahead (lookupConns): the
	// keys, what LookupBatch found for them, and, by frame, the index of
	// the frame's key (-1: none).
	ctKeys  []conntrack.Key
	ctConns []conntrack.Conn
	ctFound []bool
	ctOf    []int32
	// prefetch says when the worker looks its batch's connections up
	// ahead; benchmarks set it to compare.
	prefetch prefetchMode
	rxCount  []uint64 // by port ID, not yet published
	txCount  []uint64 // by port ID, not yet published
	batch    int

	// Busy accounting (see above), in ns on the clock of dp.epoch. Owned
	// by the worker goroutine; publish copies busy and total into pubBusy
	// and pubTotal (total first, so that BusyTime, loading busy first,
	// never sees busy > total).
	lastStep          int64 // start of the previous step
	lastWork          bool  // the previous step found work
	busy, total       int64
	pubBusy, pubTotal atomic.Int64
}

func newWorker(dp *Dataplane, id int) *Worker {
	w := &Worker{id: id, dp: dp, fwd: newForwarder(dp.cfg.Gateway), batch: dp.cfg.Batch,
		rx: make([]xsk.Desc, dp.cfg.Batch), ctKeys: make([]conntrack.Key, 0, dp.cfg.Batch),
		ctConns: make([]conntrack.Conn, dp.cfg.Batch), ctFound: make([]bool, dp.cfg.Batch), ctOf: make([]int32, dp.cfg.Batch)}
	w.fwd.track = make([]conntrack.Insertion, 0, dp.cfg.Batch)
	w.fwd.trackRes = make([]conntrack.Result, dp.cfg.Batch)
	w.fwd.natPorts = dp.cfg.NATPorts
	w.fwd.flows = &w.flowRing
	w.wakeFD.Store(-1)
	return w
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
	select {
	case w.dp.switched <- struct{}{}:
	default: // a signal is pending already
	}
}

// step makes one pass over this worker's sockets: complete, receive a
// batch, process, refill; then a batch from the host; then transmit
// everything queued and hand the punted frames to the slow path. It returns
// how much work it found (0 means the worker may sleep).
func (w *Worker) step() int {
	if ps := w.dp.ports.Load(); ps != w.set {
		w.switchTo(ps)
	}
	now := int64(time.Since(w.dp.epoch))
	w.account(now)
	eps := w.dp.endpoints.Load()
	w.fwd.under = w.dp.under.Load()
	w.fwd.pol, w.fwd.ct, w.fwd.pending = w.dp.policy.Load(), w.dp.ct.Load(), w.dp.pending.Load()
	w.fwd.svc, w.fwd.aff, w.fwd.masq = w.dp.services.Load(), w.dp.aff.Load(), w.dp.masq.Load()
	w.fwd.natOn = w.fwd.svc != nil || w.fwd.masq != nil
	w.fwd.now = now
	if w.toHost != nil {
		w.fwd.host = w.dp.host.Load()
	}
	w.fwd.fromHost = false
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
		if p.uplink != nil {
			w.stepUplink(s, n, eps)
			s.Refill()
			continue
		}
		w.fwd.from = p
		ahead := w.fwd.tracks() && (w.prefetch == prefetchAlways || w.prefetch == prefetchLarge && w.fwd.ct.Large())
		if ahead {
			w.lookupConns(s, w.rx[:n])
		}
		for i, d := range w.rx[:n] {
			if ahead {
				w.fwd.pre = preConn{}
				if j := w.ctOf[i]; j >= 0 {
					w.fwd.pre = preConn{key: &w.ctKeys[j], conn: &w.ctConns[j], found: w.ctFound[j]}
				}
			}
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
			case vPunt:
				w.punt(frame[:length], reason)
				s.Free(d.Addr)
			case vTunnel:
				w.sendToPeer(frame[:length], reason)
				s.Free(d.Addr)
			}
		}
		w.fwd.pre = preConn{}
		w.fwd.trackBatch()
		s.Refill()
	}
	if w.fromHost != nil {
		work += w.stepHost(eps)
	}
	w.flush()
	if w.toHost != nil && w.toHost.Flush() {
		w.dp.hostPort.notifyWriter()
	}
	w.lastWork = work > 0
	if work > 0 {
		w.publish()
	} else {
		w.publishBusy()
	}
	return work
}

// prefetchMode is when a worker looks its batch's connections up ahead.
type prefetchMode uint8

const (
	prefetchLarge  prefetchMode = iota // when the table is Large (the default)
	prefetchAlways                     // whenever packets take the lookup
	prefetchNever
)

// lookupConns looks up the connections of the frames of descs in one
// conntrack LookupBatch, before process handles them one at a time: in a
// table larger than the caches a lookup is two cache misses one after the
// other, and LookupBatch overlaps those of the whole batch (package
// conntrack). process then takes each frame's connection from it
// (forwarder.lookupConn). In a small table the lines are cached already
// and the decode this costs per frame would be lost, so it runs only when
// the table is Large.
func (w *Worker) lookupConns(s *xsk.Socket, descs []xsk.Desc) {
	keys := w.ctKeys[:0]
	for i, d := range descs {
		w.ctOf[i] = -1
		if k, ok := w.fwd.connKey(s.Frame(d)); ok {
			w.ctOf[i] = int32(len(keys))
			keys = append(keys, k)
		}
	}
	w.ctKeys = keys
	w.fwd.ct.LookupBatch(keys, conntrack.TimeOf(time.Duration(w.fwd.now)), w.ctConns, w.ctFound)
}

// account charges the time from the previous step's start to now (ns
// since dp.epoch) to total, and to busy if that step found work.
func (w *Worker) account(now int64) {
	d := now - w.lastStep
	w.lastStep = now
	w.total += d
	if w.lastWork {
		w.busy += d
	}
}

// BusyTime returns how long the worker has been timed (total: since Start,
// up to the start of its latest step) and how much of it went to steps that
// found work (busy), as of its last publish. busy <= total. The agent's busy
// ratio is the quotient of two readings' differences. Safe from any
// goroutine.
func (w *Worker) BusyTime() (busy, total time.Duration) {
	b := w.pubBusy.Load()
	return time.Duration(b), time.Duration(w.pubTotal.Load())
}

// stepHost forwards a batch of frames the slow path read from the host:
// to pods like any frame, and answers (ARP/ND, ICMP errors) back to the
// host. The frames are in the queue's slots, which process rewrites in
// place; they are released once copied out.
func (w *Worker) stepHost(eps *endpoint.Table) int {
	q := w.fromHost
	n := q.Peek(w.batch)
	if n == 0 {
		return 0
	}
	w.fwd.fromHost, w.fwd.from = true, nil
	for i := range n {
		frame := q.Frame(i)
		v, out, length, reason := w.fwd.process(frame, eps)
		switch v {
		case vDrop:
			w.Counters.Inc(reason)
		case vForward:
			w.copyTo(out, frame[:length], reason)
		case vReply, vPunt:
			w.punt(frame[:length], reason)
		case vTunnel:
			w.sendToPeer(frame[:length], reason)
		}
	}
	w.fwd.trackBatch()
	q.Release(n)
	w.hostRx += uint64(n)
	w.fwd.fromHost = false
	return n
}

// stepUplink forwards the n frames just received on the uplink's socket s:
// from peer nodes to local pods; and, for what the NAT step translated,
// on to other nodes or to the host (replies to clients outside the
// cluster, which the host routes). Nothing is answered from here.
func (w *Worker) stepUplink(s *xsk.Socket, n int, eps *endpoint.Table) {
	w.fwd.from = nil
	for _, d := range w.rx[:n] {
		frame := s.Frame(d)
		v, out, start, end, reason := w.fwd.fromUplink(frame, eps)
		switch v {
		case vForward:
			w.copyTo(out, frame[start:end], reason)
		case vTunnel:
			w.sendToPeer(frame[start:end], reason)
		case vPunt:
			w.punt(frame[start:end], reason)
		default:
			w.Counters.Inc(reason)
		}
		s.Free(d.Addr)
	}
	w.fwd.trackBatch()
}

// sendToPeer copies frame, routed to peer node w.fwd.peer, into a chunk of
// the uplink's socket, encapsulating it in place as the peer's tunnel
// says, and queues it.
func (w *Worker) sendToPeer(frame []byte, reason stats.Reason) {
	u := w.fwd.under
	ph := &u.peers[w.fwd.peer]
	id := u.uplink
	if int(id) >= len(w.set.ports) || w.set.ports[id] == nil || w.set.ports[id].uplink == nil {
		w.Counters.Inc(stats.NoPort) // the uplink is being replaced
		return
	}
	ds := w.set.ports[id].socks[w.id]
	addr, ok := ds.Alloc()
	if !ok {
		ds.Complete()
		if addr, ok = ds.Alloc(); !ok {
			w.Counters.Inc(stats.TxNoFrame)
			return
		}
	}
	buf := ds.Buffer(addr)
	off := tunnelOverhead(ph.tunnel)
	n := copy(buf[off:], frame)
	w.outerID++
	switch ph.tunnel {
	case route.Direct:
		eth := packet.Ethernet(buf)
		eth.SetDst(ph.outer.DstMAC)
		eth.SetSrc(u.uplinkMAC)
		ok = n == len(frame)
	case route.VXLAN:
		eth := packet.Ethernet(buf[off:])
		eth.SetDst(ph.vtepMAC)
		eth.SetSrc(u.vtepMAC)
		_, ok = u.vx.Encap(buf, off, n, &ph.outer, w.outerID)
		ok = ok && n == len(frame)
	case route.IPIP:
		_, ok = encap.EncapIPIP(buf, off, n, &ph.outer, w.outerID)
		ok = ok && n == len(frame)
	}
	if !ok {
		// Only a frame too big for a chunk gets here; toPeer has checked
		// the tunnel's MTU, so that is a frame beyond the uplink's MTU.
		ds.Free(addr)
		w.Counters.Inc(stats.TunnelTooBig)
		return
	}
	w.queue(id, xsk.Desc{Addr: addr, Len: uint32(n + off)}, reason)
}

// punt copies frame into the queue to the host, counting reason if it fits
// and PuntQueueFull if the queue is full. The slow path sees it at the end
// of the step.
func (w *Worker) punt(frame []byte, reason stats.Reason) {
	if !w.toHost.Push(frame) {
		w.Counters.Inc(stats.PuntQueueFull)
		return
	}
	w.hostTx++
	w.Counters.Inc(reason)
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
	w.flowRing.publish()
	w.publishBusy()
	if hp := w.dp.hostPort; hp != nil {
		c := &hp.counters[w.id]
		c.rx.Store(w.hostRx)
		c.tx.Store(w.hostTx)
	}
	for _, p := range w.active {
		c := &p.counters[w.id]
		c.rx.Store(w.rxCount[p.ID])
		c.tx.Store(w.txCount[p.ID])
	}
}

// publishBusy publishes the busy accounting: total before busy (see
// BusyTime).
func (w *Worker) publishBusy() {
	w.pubTotal.Store(w.total)
	w.pubBusy.Store(w.busy)
}
