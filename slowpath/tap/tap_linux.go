// Package tap is the slow path's TAP device: a kernel network interface
// whose frames a process reads and writes through a file descriptor. What
// the host's stack sends out of the interface is read here; what is written
// here the host's stack receives as if it came in on the interface.
//
// # Model
//
// [Open] creates the device with github.com/songgao/water (one queue, no
// packet information header, not persistent: the interface disappears with
// the last descriptor, also when the process dies) and keeps the *os.File
// water returns, which Go's runtime poller watches.
//
// water's interface is an io.ReadWriter: one frame per Read or Write, each
// through the poller's locks. [Device.ReadBatch] and [Device.WriteBatch] use
// the file's syscall.RawConn instead, so that one trip through the poller
// reads (or writes) as many frames as are ready, up to the batch, with one
// read(2) or write(2) each: a TAP has no recvmmsg, so a syscall per frame is
// the floor without the vnet header and GSO (not used: the fast path does
// not handle GSO frames). Nothing is allocated per batch: the callbacks are
// made once, in Open, and the caller owns the buffers.
//
// # Concurrency
//
// One goroutine may call ReadBatch while another calls WriteBatch; neither
// may be called by two goroutines at once. Close unblocks a waiting
// ReadBatch, which then returns os.ErrClosed.
package tap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// Device is an open TAP device.
type Device struct {
	name   string
	file   *os.File
	rc     syscall.RawConn
	closed atomic.Bool // set by Close; the raw conn's own error is not os.ErrClosed

	// Read batch state, used by readFn; owned by the ReadBatch caller.
	rbufs   [][]byte
	rlens   []int
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool

	// Write batch state, used by writeFn; owned by the WriteBatch caller.
	wframes       [][]byte
	wsent, wfails int
	werr          error
}

// Open creates the TAP device name (at most 15 bytes). It fails if an
// interface of that name exists and is not a TAP device this process may
// attach to.
func Open(name string) (*Device, error) {
	if name == "" || len(name) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("tap: name %q must be 1 to 15 bytes", name)
	}
	cfg := water.Config{DeviceType: water.TAP}
	cfg.Name = name
	ifce, err := water.New(cfg)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tap %s: create: no /dev/net/tun (load the tun module; in a container, mount the host's "+
			"/dev/net/tun, as deploy/ringnet.yaml does): %w", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("tap %s: create: %w", name, err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, fmt.Errorf("tap %s: water returned a %T, not a file", name, ifce.ReadWriteCloser)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	// water opens /dev/net/tun without O_CLOEXEC: a child process would
	// otherwise keep the device alive after we exit.
	var cerr error
	err = rc.Control(func(fd uintptr) {
		_, cerr = unix.FcntlInt(fd, unix.F_SETFD, unix.FD_CLOEXEC)
	})
	if err = errors.Join(err, cerr); err != nil {
		f.Close()
		return nil, fmt.Errorf("tap %s: set close-on-exec: %w", name, err)
	}
	d := &Device{name: ifce.Name(), file: f, rc: rc}
	d.readFn = d.readReady
	d.writeFn = d.writeReady
	return d, nil
}

// Name is the interface's name.
func (d *Device) Name() string { return d.name }

// ReadBatch waits until at least one frame is ready, then reads frames into
// bufs, one per buffer, until none is ready or bufs are full, and stores
// each frame's length in lens. A frame longer than its buffer is cut short
// (size buffers for the MTU plus the Ethernet header). It returns the
// number of frames read; on error (os.ErrClosed after Close) none.
func (d *Device) ReadBatch(bufs [][]byte, lens []int) (int, error) {
	d.rbufs, d.rlens, d.rn, d.rerr = bufs, lens[:len(bufs)], 0, nil
	err := d.rc.Read(d.readFn)
	n, rerr := d.rn, d.rerr
	d.rbufs, d.rlens = nil, nil
	if err != nil {
		return n, d.closedErr(err)
	}
	return n, rerr
}

// readReady is called by the poller when the descriptor may be readable;
// returning false waits for the next readiness.
func (d *Device) readReady(fd uintptr) bool {
	for d.rn < len(d.rbufs) {
		m, err := unix.Read(int(fd), d.rbufs[d.rn])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return d.rn > 0
		case err != nil:
			d.rerr = fmt.Errorf("tap %s: read: %w", d.name, err)
			return true
		}
		d.rlens[d.rn] = m
		d.rn++
	}
	return true
}

// WriteBatch writes each frame to the device. It returns how many the
// device took and how many it refused (a refused frame is skipped: the
// interface is down, the frame is malformed, ...); err is non-nil only when
// the device itself is unusable (os.ErrClosed after Close), and then the
// rest of the batch is not written.
func (d *Device) WriteBatch(frames [][]byte) (sent, failed int, err error) {
	d.wframes, d.wsent, d.wfails, d.werr = frames, 0, 0, nil
	err = d.rc.Write(d.writeFn)
	sent, failed = d.wsent, d.wfails
	d.wframes = nil
	if err != nil {
		return sent, failed, d.closedErr(err)
	}
	return sent, failed, d.werr
}

func (d *Device) writeReady(fd uintptr) bool {
	for i := d.wsent + d.wfails; i < len(d.wframes); {
		_, err := unix.Write(int(fd), d.wframes[i])
		switch {
		case err == nil:
			d.wsent++
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false // wait until writable
		case errors.Is(err, unix.EBADF):
			d.werr = fmt.Errorf("tap %s: write: %w", d.name, err)
			return true
		default:
			d.wfails++
		}
		i++
	}
	return true
}

// closedErr reports an error of the raw conn as os.ErrClosed once Close
// has been called (the poller's own "use of closed file" is internal).
func (d *Device) closedErr(err error) error {
	if d.closed.Load() {
		return fmt.Errorf("tap %s: %w", d.name, os.ErrClosed)
	}
	return fmt.Errorf("tap %s: %w", d.name, err)
}

// Close closes the descriptor, which removes the interface.
func (d *Device) Close() error {
	d.closed.Store(true)
	return d.file.Close()
}
