package xdp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// testXSK is the least AF_XDP socket an XSKMAP accepts: a UMEM with fill and
// completion rings, an RX ring, bound in copy mode to one (device, queue).
// The rings are never mapped and no frame is ever read: tests only need the
// kernel to see a bound socket. The real ring layer is package xsk.
type testXSK struct {
	fd   int
	umem []byte
}

const (
	testXSKChunk  = 2048 // smallest chunk size the kernel takes
	testXSKChunks = 16
	testXSKRing   = 16 // entries per ring; a power of two
)

// openTestXSK opens a socket bound to queue of device ifindex. Call it inside
// the device's network namespace: the socket resolves ifindex in the
// namespace it was created in.
func openTestXSK(ifindex, queue int) (_ *testXSK, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("af_xdp socket: %w", err)
	}
	x := &testXSK{fd: fd}
	defer func() {
		if err != nil {
			x.Close()
		}
	}()
	x.umem, err = unix.Mmap(-1, 0, testXSKChunk*testXSKChunks,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap umem: %w", err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))),
		Len:  uint64(len(x.umem)),
		Size: testXSKChunk,
	}
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	if errno != 0 {
		return nil, fmt.Errorf("register umem: %w", errno)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, testXSKRing); err != nil {
			return nil, fmt.Errorf("size ring %d: %w", opt, err)
		}
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind af_xdp socket to ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return x, nil
}

// FD returns the socket's fd, for Program.Register.
func (x *testXSK) FD() int { return x.fd }

// Close closes the socket, then releases its UMEM. Closing twice is a no-op.
func (x *testXSK) Close() error {
	var err error
	if x.fd >= 0 {
		err = unix.Close(x.fd)
		x.fd = -1
	}
	if x.umem != nil {
		if err2 := unix.Munmap(x.umem); err == nil {
			err = err2
		}
		x.umem = nil
	}
	return err
}
