package xsk

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the OS edge of the package: the syscalls and the mappings.

// Open creates an AF_XDP socket with its own UMEM, binds it to queue of the
// device ifname, and fills the fill ring. The device needs an XDP program
// that redirects into an XSKMAP holding the socket's FD (package xdp) before
// any frame arrives.
func Open(ifname string, queue int, cfg Config) (*Socket, error) {
	return OpenUMEM(ifname, queue, cfg, nil)
}

// MapUMEM maps a UMEM for cfg and faults it in: NumFrames*FrameSize bytes,
// anonymous and private. Mapping and zeroing it is most of what opening a
// socket costs (about 2.7 ms of 3.5 for the default 8 MiB on a 2-core
// VM), so a caller that opens sockets on a latency-sensitive path maps
// their UMEMs ahead of time and hands them to OpenUMEM, or prepares whole
// sockets ahead with Prepare. Unmap one that is not used with UnmapUMEM.
func MapUMEM(cfg Config) ([]byte, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := int(cfg.NumFrames) * int(cfg.FrameSize)
	umem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("xsk: mmap UMEM of %d bytes: %w", n, err)
	}
	// Fault it in a piece at a time rather than with MAP_POPULATE, which
	// holds the process's mmap lock for the whole 8 MiB (2–3 ms): every
	// mmap of another thread (a socket's rings, the Go heap) would wait
	// that long behind it.
	for off := 0; off < n; off += populateStep {
		piece := umem[off:min(off+populateStep, n)]
		if err := unix.Madvise(piece, unix.MADV_POPULATE_WRITE); err != nil {
			// Before Linux 5.14: touch every page.
			for i := 0; i < len(piece); i += unix.Getpagesize() {
				piece[i] = 0
			}
		}
	}
	return umem, nil
}

// populateStep is how much of a UMEM MapUMEM faults in per call.
const populateStep = 256 << 10

// UnmapUMEM unmaps a UMEM from MapUMEM that no socket took.
func UnmapUMEM(umem []byte) error { return unix.Munmap(umem) }

// OpenUMEM is Open with a UMEM from MapUMEM for the same cfg, or nil to map
// one. The socket owns the UMEM from then on, whether it opens or not:
// Close, or the failure, unmaps it.
func OpenUMEM(ifname string, queue int, cfg Config, umem []byte) (*Socket, error) {
	s, err := prepare(cfg, umem)
	if err != nil {
		return nil, fmt.Errorf("xsk %s queue %d: %w", ifname, queue, err)
	}
	if err := s.Bind(ifname, queue); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Prepare makes a socket up to its bind: the socket, its UMEM (umem from
// MapUMEM, or nil to map one) registered and pinned, its four rings sized
// and mapped. That is nearly all of what opening a socket costs; Bind then
// attaches it to a device's queue in a few microseconds. So a caller that
// opens sockets on a latency-sensitive path prepares them ahead of time.
// The socket owns the UMEM from then on; Close releases it, bound or not.
func Prepare(cfg Config, umem []byte) (*Socket, error) {
	s, err := prepare(cfg, umem)
	if err != nil {
		return nil, fmt.Errorf("xsk: %w", err)
	}
	return s, nil
}

func prepare(cfg Config, umem []byte) (_ *Socket, err error) {
	var s *Socket
	defer func() {
		switch {
		case err == nil:
		case s != nil:
			s.Close() // unmaps the UMEM too
		case umem != nil:
			_ = unix.Munmap(umem)
		}
	}()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n := int(cfg.NumFrames) * int(cfg.FrameSize); umem != nil && len(umem) != n {
		return nil, fmt.Errorf("UMEM of %d bytes, want %d (NumFrames*FrameSize)", len(umem), n)
	}
	if umem == nil {
		if umem, err = MapUMEM(cfg); err != nil {
			return nil, err
		}
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket(AF_XDP): %w", err)
	}
	s = &Socket{fd: fd, queue: -1, cfg: cfg}
	s.maps = append(s.maps, umem)
	s.umem = umem
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:  uint64(len(umem)),
		Size: cfg.FrameSize,
	}
	if err := setsockoptPtr(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("register UMEM: %w", err)
	}
	for _, o := range []struct {
		opt  int
		size uint32
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, cfg.FillSize, "fill ring"},
		{unix.XDP_UMEM_COMPLETION_RING, cfg.CompletionSize, "completion ring"},
		{unix.XDP_RX_RING, cfg.RxSize, "RX ring"},
		{unix.XDP_TX_RING, cfg.TxSize, "TX ring"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, int(o.size)); err != nil {
			return nil, fmt.Errorf("size %s: %w", o.name, err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockoptPtr(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, fmt.Errorf("get ring offsets: %w", err)
	}
	mapRing := func(pgoff int64, o unix.XDPRingOffset, size uint32, entry uintptr, name string) ([]byte, error) {
		mem, err := unix.Mmap(fd, pgoff, int(o.Desc)+int(size)*int(entry),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("mmap %s: %w", name, err)
		}
		s.maps = append(s.maps, mem)
		return mem, nil
	}
	fillMem, err := mapRing(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, cfg.FillSize, 8, "fill ring")
	if err != nil {
		return nil, err
	}
	compMem, err := mapRing(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, cfg.CompletionSize, 8, "completion ring")
	if err != nil {
		return nil, err
	}
	rxMem, err := mapRing(unix.XDP_PGOFF_RX_RING, off.Rx, cfg.RxSize, unsafe.Sizeof(Desc{}), "RX ring")
	if err != nil {
		return nil, err
	}
	txMem, err := mapRing(unix.XDP_PGOFF_TX_RING, off.Tx, cfg.TxSize, unsafe.Sizeof(Desc{}), "TX ring")
	if err != nil {
		return nil, err
	}
	s.initRings(fillMem, off.Fr, compMem, off.Cr, rxMem, off.Rx, txMem, off.Tx)
	return s, nil
}

// Bind binds a socket from Prepare to queue of the device ifname and fills
// its fill ring. A socket binds once: after a failed Bind, Close it.
func (s *Socket) Bind(ifname string, queue int) error {
	if s.ifindex != 0 {
		return fmt.Errorf("xsk %s queue %d: already bound to %s queue %d", ifname, queue, s.ifname, s.queue)
	}
	ifindex, err := Ifindex(ifname)
	if err != nil {
		return fmt.Errorf("xsk %s queue %d: %w", ifname, queue, err)
	}
	var flags uint16
	switch s.cfg.Bind {
	case BindCopy:
		flags |= unix.XDP_COPY
	case BindZeroCopy:
		flags |= unix.XDP_ZEROCOPY
	}
	if !s.cfg.NoNeedWakeup {
		flags |= unix.XDP_USE_NEED_WAKEUP
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if err := unix.Bind(s.fd, sa); err != nil {
		return fmt.Errorf("xsk %s queue %d: bind in %s mode: %w", ifname, queue, s.cfg.Bind, explainBind(err, ifname, queue, s.cfg.Bind))
	}
	s.ifname, s.ifindex, s.queue = ifname, ifindex, queue
	var opts struct{ flags uint32 }
	if err := getsockoptPtr(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)); err == nil {
		s.zc = opts.flags&unix.XDP_OPTIONS_ZEROCOPY != 0
	}
	// In copy mode one sendto transmits at most a budget of frames (32 by
	// default) and then returns EAGAIN. Raise it to the TX ring size where
	// the kernel allows it (XDP_MAX_TX_SKB_BUDGET, Linux 6.17+); elsewhere
	// Flush simply kicks again on the next step.
	if unix.SetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(s.cfg.TxSize)) == nil {
		s.txBudget = s.cfg.TxSize
	}
	s.Refill()
	return nil
}

// Ifindex is the index of interface name in the calling thread's network
// namespace, from one ioctl (SIOCGIFINDEX). net.InterfaceByName reads every
// interface of the namespace instead, and a node's pods make that hundreds,
// once per socket opened.
func Ifindex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// explainBind adds what to do to the errors bind is known to return.
func explainBind(err error, ifname string, queue int, mode BindMode) error {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP) && mode == BindZeroCopy:
		return fmt.Errorf("%w: %s has no zero-copy AF_XDP support; use copy mode", err, ifname)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w: queue %d of %s already has an AF_XDP socket (is another ringnetd running?)", err, queue, ifname)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: check that %s has an RX queue %d and is up", err, ifname, queue)
	}
	return err
}

func (s *Socket) initRings(fill []byte, fillOff unix.XDPRingOffset, comp []byte, compOff unix.XDPRingOffset,
	rx []byte, rxOff unix.XDPRingOffset, tx []byte, txOff unix.XDPRingOffset) {
	s.fill = newProdRing[uint64](fill, fillOff, s.cfg.FillSize)
	s.comp = newConsRing[uint64](comp, compOff, s.cfg.CompletionSize)
	s.rx = newConsRing[Desc](rx, rxOff, s.cfg.RxSize)
	s.tx = newProdRing[Desc](tx, txOff, s.cfg.TxSize)
	s.chunkMask = ^uint64(s.cfg.FrameSize - 1)
	s.free = make([]uint64, s.cfg.NumFrames)
	for i := range s.free {
		// Highest address at the bottom, so chunk 0 is handed out first.
		s.free[i] = uint64(len(s.free)-1-i) * uint64(s.cfg.FrameSize)
	}
}

// Close unbinds the socket and releases its rings and UMEM. Call it only
// after the goroutine using the socket has stopped.
func (s *Socket) Close() error {
	var errs []error
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close xsk %s queue %d: %w", s.ifname, s.queue, err))
		}
		s.fd = -1
		for _, m := range s.maps {
			if err := unix.Munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("munmap: %w", err))
			}
		}
	}
	s.maps, s.umem = nil, nil
	return errors.Join(errs...)
}

// Stats reads the kernel's counters for the socket and adds our own.
func (s *Socket) Stats() (Stats, error) {
	st := s.ownStats()
	if s.fd < 0 {
		return st, nil
	}
	var k unix.XDPStatistics
	if err := getsockoptPtr(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&k), unsafe.Sizeof(k)); err != nil {
		return st, fmt.Errorf("xsk %s queue %d: statistics: %w", s.ifname, s.queue, err)
	}
	st.RxDropped, st.RxInvalidDescs, st.TxInvalidDescs = k.Rx_dropped, k.Rx_invalid_descs, k.Tx_invalid_descs
	st.RxRingFull, st.RxFillRingEmpty, st.TxRingEmpty = k.Rx_ring_full, k.Rx_fill_ring_empty_descs, k.Tx_ring_empty_descs
	return st, nil
}

// Poll waits until one of fds is readable or timeoutMs passes (-1: forever),
// retrying on EINTR. It returns the number of ready descriptors.
func Poll(fds []unix.PollFd, timeoutMs int) (int, error) {
	for {
		n, err := unix.Poll(fds, timeoutMs)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// wakeTX asks the kernel to transmit what is on the TX ring. EAGAIN means
// the kernel sent its budget and more is waiting, and EBUSY that another
// sendto is in progress: the caller kicks again, so neither is an error.
func wakeTX(fd int) error {
	err := unix.Sendto(fd, nil, unix.MSG_DONTWAIT, nil)
	if err == unix.EAGAIN || err == unix.EBUSY {
		return nil
	}
	return err
}

// wakeRX asks the kernel to look at the fill ring again.
func wakeRX(fd int) {
	_, _, _ = unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
}

func setsockoptPtr(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockoptPtr(fd, opt int, p unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}
