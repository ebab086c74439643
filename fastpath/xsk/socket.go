package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
)

// BindMode chooses how the kernel moves frames between the device and the UMEM.
type BindMode int

const (
	// BindAuto lets the kernel use zero-copy where the driver supports it
	// and copy mode otherwise.
	BindAuto BindMode = iota
	// BindCopy forces copy mode (the only mode veth offers).
	BindCopy
	// BindZeroCopy requires zero-copy; binding fails on devices without it.
	BindZeroCopy
)

func (m BindMode) String() string {
	switch m {
	case BindAuto:
		return "auto"
	case BindCopy:
		return "copy"
	case BindZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("BindMode(%d)", int(m))
}

// ParseBindMode parses "auto", "copy" or "zero-copy" (as given on a command line).
func ParseBindMode(s string) (BindMode, error) {
	for _, m := range []BindMode{BindAuto, BindCopy, BindZeroCopy} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown bind mode %q: want auto, copy or zero-copy", s)
}

// Config sizes a socket's UMEM and rings. The zero value means the defaults.
type Config struct {
	// NumFrames is the number of UMEM chunks (default 4096). It should be at
	// least FillSize+TxSize so that a full fill ring leaves frames for TX.
	NumFrames uint32
	// FrameSize is the chunk size: a power of two from 2048 to the page size
	// (default 2048, enough for a 1500-byte MTU frame behind the kernel's
	// 256 bytes of headroom).
	FrameSize uint32
	// Ring sizes, powers of two (default 2048 each).
	FillSize, CompletionSize, RxSize, TxSize uint32
	// Bind selects copy or zero-copy mode (default BindAuto).
	Bind BindMode
	// NoNeedWakeup disables XDP_USE_NEED_WAKEUP, so that every TX batch
	// costs a sendto. Only for measuring what need_wakeup saves.
	NoNeedWakeup bool
}

// Defaults for Config, sized for throughput on a 1500-byte MTU: 8 MiB of
// UMEM per socket, rings deep enough to absorb a scheduling delay of a
// worker at a few Mpps.
const (
	DefaultNumFrames = 4096
	DefaultFrameSize = 2048
	DefaultRingSize  = 2048
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.NumFrames, DefaultNumFrames)
	def(&c.FrameSize, DefaultFrameSize)
	def(&c.FillSize, DefaultRingSize)
	def(&c.CompletionSize, DefaultRingSize)
	def(&c.RxSize, DefaultRingSize)
	def(&c.TxSize, DefaultRingSize)
	return c
}

// Validate reports the first field that the kernel would refuse, naming it.
func (c Config) Validate() error {
	pow2 := func(name string, v uint32) error {
		if v == 0 || bits.OnesCount32(v) != 1 {
			return fmt.Errorf("xsk config: %s %d is not a power of two", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{{"FrameSize", c.FrameSize}, {"FillSize", c.FillSize}, {"CompletionSize", c.CompletionSize}, {"RxSize", c.RxSize}, {"TxSize", c.TxSize}} {
		if err := pow2(f.name, f.v); err != nil {
			return err
		}
	}
	if c.FrameSize < 2048 || c.FrameSize > 4096 {
		return fmt.Errorf("xsk config: FrameSize %d out of range [2048, 4096]", c.FrameSize)
	}
	if c.NumFrames == 0 {
		return errors.New("xsk config: NumFrames is 0")
	}
	if uint64(c.NumFrames)*uint64(c.FrameSize) > 1<<32 {
		return fmt.Errorf("xsk config: UMEM of %d x %d bytes exceeds 4 GiB", c.NumFrames, c.FrameSize)
	}
	return nil
}

// Socket is one AF_XDP socket bound to a (device, queue) with its own UMEM.
// See the package documentation for who owns which frame when.
type Socket struct {
	fd      int // -1 for a socket made by NewPair
	ifname  string
	ifindex int
	queue   int
	cfg     Config
	zc      bool // bound in zero-copy mode
	// txBudget is the most frames one sendto sends in copy mode, if we
	// could set it; 0 means the kernel's default.
	txBudget uint32

	umem      []byte // NumFrames*FrameSize; written by us and the kernel per frame ownership
	chunkMask uint64 // ^(FrameSize-1)

	fill prodRing[uint64] // we produce free chunks, the kernel consumes them
	comp consRing[uint64] // the kernel produces sent chunks, we consume them
	rx   consRing[Desc]   // the kernel produces received frames, we consume them
	tx   prodRing[Desc]   // we produce frames to send, the kernel consumes them

	// free is the stack of chunk addresses owned by no ring and no caller.
	// cap(free) == NumFrames, so pushing never allocates.
	free []uint64

	maps [][]byte // ring and UMEM mappings to undo on Close

	// Counters written by the worker, read by Stats from any goroutine.
	kicks, kickErrors, rxWakeups, badFrees atomic.Uint64
}

// Ifname, Ifindex and Queue identify what the socket is bound to.
func (s *Socket) Ifname() string { return s.ifname }
func (s *Socket) Ifindex() int   { return s.ifindex }
func (s *Socket) Queue() int     { return s.queue }

// FD is the socket's file descriptor, to register in an XSKMAP and to poll.
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zc }

// TxBudget is the most frames the kernel sends per wakeup in copy mode, or 0
// if it kept its default (32).
func (s *Socket) TxBudget() uint32 { return s.txBudget }

// Config returns the configuration in effect (defaults filled in).
func (s *Socket) Config() Config { return s.cfg }

// FreeFrames is the number of chunks on the free stack.
func (s *Socket) FreeFrames() int { return len(s.free) }

// Receive moves up to len(descs) received descriptors into descs and returns
// how many it moved. The frames now belong to the caller until it passes them
// to Transmit or Free.
func (s *Socket) Receive(descs []Desc) int {
	n := s.rx.peek(uint32(len(descs)))
	for i := range n {
		descs[i] = s.rx.get(i)
	}
	if n > 0 {
		s.rx.release(n)
	}
	return int(n)
}

// Frame returns the bytes of a received frame, with capacity up to the end
// of its chunk.
func (s *Socket) Frame(d Desc) []byte {
	end := d.Addr&s.chunkMask + uint64(s.cfg.FrameSize)
	return s.umem[d.Addr : d.Addr+uint64(d.Len) : end]
}

// Alloc takes a free chunk for the caller to fill and transmit.
func (s *Socket) Alloc() (addr uint64, ok bool) {
	n := len(s.free)
	if n == 0 {
		return 0, false
	}
	addr = s.free[n-1]
	s.free = s.free[:n-1]
	return addr, true
}

// Buffer returns the whole chunk at addr, to write a frame into.
func (s *Socket) Buffer(addr uint64) []byte {
	addr &= s.chunkMask
	return s.umem[addr : addr+uint64(s.cfg.FrameSize) : addr+uint64(s.cfg.FrameSize)]
}

// Free returns a chunk the caller owns to the free stack.
func (s *Socket) Free(addr uint64) {
	if len(s.free) == cap(s.free) {
		// More frees than frames: a chunk was freed twice. Never grow.
		s.badFrees.Add(1)
		return
	}
	s.free = append(s.free, addr&s.chunkMask)
}

// Transmit queues descs on the TX ring and wakes the kernel if it asks to be
// woken. It returns how many it queued; the caller still owns the rest.
func (s *Socket) Transmit(descs []Desc) int {
	n := s.tx.reserve(uint32(len(descs)))
	for i := range n {
		s.tx.set(i, descs[i])
	}
	if n > 0 {
		s.tx.submit(n)
		s.kickTX()
	}
	return int(n)
}

// Flush wakes the kernel again if frames are still waiting on the TX ring
// (in copy mode one sendto sends a bounded number of frames). It reports
// whether any were waiting.
func (s *Socket) Flush() bool {
	if s.tx.outstanding() == 0 {
		return false
	}
	s.kickTX()
	return true
}

func (s *Socket) kickTX() {
	if s.fd < 0 || (!s.cfg.NoNeedWakeup && !s.tx.needsWakeup()) {
		return
	}
	s.kicks.Add(1)
	if err := wakeTX(s.fd); err != nil {
		s.kickErrors.Add(1)
	}
}

// Complete moves the chunks the kernel has finished sending back to the
// free stack and returns how many.
func (s *Socket) Complete() int {
	n := s.comp.peek(s.comp.size)
	for i := range n {
		s.Free(s.comp.get(i))
	}
	if n > 0 {
		s.comp.release(n)
	}
	return int(n)
}

// Refill hands free chunks to the kernel on the fill ring, as many as fit,
// and wakes the kernel if it asks. It returns how many it handed over.
func (s *Socket) Refill() int {
	n := s.fill.reserve(uint32(len(s.free)))
	top := uint32(len(s.free))
	for i := range n {
		s.fill.set(i, s.free[top-1-i])
	}
	if n > 0 {
		s.free = s.free[:top-n]
		s.fill.submit(n)
	}
	if s.fd >= 0 && s.fill.needsWakeup() {
		s.rxWakeups.Add(1)
		wakeRX(s.fd)
	}
	return int(n)
}

// Stats are a socket's counters: the kernel's and our own.
type Stats struct {
	RxDropped       uint64 // kernel: frames dropped for reasons other than a full ring
	RxInvalidDescs  uint64 // kernel
	TxInvalidDescs  uint64 // kernel
	RxRingFull      uint64 // kernel: frames dropped because the RX ring was full
	RxFillRingEmpty uint64 // kernel: times the fill ring had no chunk for a frame
	TxRingEmpty     uint64 // kernel
	Kicks           uint64 // sendto calls made because the kernel asked
	KickErrors      uint64 // sendto calls that failed (EAGAIN, ENOBUFS, ...)
	RxWakeups       uint64 // recvfrom calls made for the fill ring
	BadFrees        uint64 // chunks freed more often than allocated (a bug)
}

func (s *Socket) ownStats() Stats {
	return Stats{
		Kicks:      s.kicks.Load(),
		KickErrors: s.kickErrors.Load(),
		RxWakeups:  s.rxWakeups.Load(),
		BadFrees:   s.badFrees.Load(),
	}
}
