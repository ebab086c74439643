package xsk

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer plays the kernel's side of a socket made by [NewPair]: it consumes
// the fill and TX rings and produces the RX and completion rings, through the
// same ring code and the same memory layout as a real socket. It lets unit
// tests and benchmarks drive the whole per-batch path of a worker without
// root and without syscalls; end-to-end tests use real sockets.
type Peer struct {
	s    *Socket
	fill consRing[uint64]
	comp prodRing[uint64]
	rx   prodRing[Desc]
	tx   consRing[Desc]
	// Headroom is where delivered frames start within a chunk, as the
	// kernel's XDP_PACKET_HEADROOM in copy mode.
	Headroom uint64
}

// pairOffsets lays a ring out as the kernel does: indexes on their own cache
// lines, then the entries.
var pairOffsets = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

// NewPair returns a socket backed by ordinary memory and the Peer that
// stands in for the kernel. The socket has FD -1; its wakeups are no-ops.
func NewPair(cfg Config) (*Socket, *Peer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	mem := func(size uint32, entry uintptr) []byte {
		return make([]byte, int(pairOffsets.Desc)+int(size)*int(entry))
	}
	fill, comp := mem(cfg.FillSize, 8), mem(cfg.CompletionSize, 8)
	descSize := unsafe.Sizeof(Desc{})
	rx, tx := mem(cfg.RxSize, descSize), mem(cfg.TxSize, descSize)
	s := &Socket{fd: -1, ifname: "pair", cfg: cfg, umem: make([]byte, int(cfg.NumFrames)*int(cfg.FrameSize))}
	s.initRings(fill, pairOffsets, comp, pairOffsets, rx, pairOffsets, tx, pairOffsets)
	p := &Peer{
		s:        s,
		fill:     newConsRing[uint64](fill, pairOffsets, cfg.FillSize),
		comp:     newProdRing[uint64](comp, pairOffsets, cfg.CompletionSize),
		rx:       newProdRing[Desc](rx, pairOffsets, cfg.RxSize),
		tx:       newConsRing[Desc](tx, pairOffsets, cfg.TxSize),
		Headroom: unix.XDP_PACKET_HEADROOM,
	}
	s.Refill()
	return s, p, nil
}

// Deliver receives frames as the kernel would: each takes a chunk from the
// fill ring, is copied behind the headroom and posted on the RX ring. It
// returns how many were delivered: fewer when the fill or RX ring runs out,
// and none from the first frame that does not fit a chunk on.
func (p *Peer) Deliver(frames ...[]byte) int {
	want := uint32(len(frames))
	lim := min(p.fill.peek(want), p.rx.reserve(want))
	n := uint32(0)
	for ; n < lim; n++ {
		f := frames[n]
		if uint64(len(f))+p.Headroom > uint64(p.s.cfg.FrameSize) {
			break
		}
		i := n
		addr := p.fill.get(i) + p.Headroom
		copy(p.s.umem[addr:], f)
		p.rx.set(i, Desc{Addr: addr, Len: uint32(len(f))})
	}
	if n > 0 {
		p.fill.release(n)
		p.rx.submit(n)
	}
	return int(n)
}

// Sent consumes the TX ring as the kernel would, calling fn (if not nil)
// with each frame, and posts the chunks on the completion ring. It returns
// how many frames it took.
func (p *Peer) Sent(fn func(frame []byte)) int {
	n := min(p.tx.peek(p.tx.size), p.comp.reserve(p.tx.size))
	for i := range n {
		d := p.tx.get(i)
		if fn != nil {
			fn(p.s.umem[d.Addr : d.Addr+uint64(d.Len)])
		}
		p.comp.set(i, d.Addr)
	}
	if n > 0 {
		p.tx.release(n)
		p.comp.submit(n)
	}
	return int(n)
}

// FillCount is the number of chunks the socket has handed to the fill ring
// that the Peer has not used yet.
func (p *Peer) FillCount() int { return int(p.fill.peek(p.fill.size)) }
