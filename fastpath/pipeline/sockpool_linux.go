package pipeline

import (
	"runtime"
	"sync"

	"github.com/ringnet/ringnet/fastpath/xsk"
	"golang.org/x/sys/unix"
)

// sockPool keeps AF_XDP sockets prepared ahead of the next pod port, one
// per worker: socket made, UMEM mapped, faulted in and registered, rings
// mapped (xsk.Prepare), so that attaching a port only binds them. Opening a
// socket from nothing took about 3.5 ms on a 2-core VM (mapping and
// faulting in its 8 MiB UMEM 2.7 of it), and a pod's CNI ADD waits for its
// sockets. A goroutine prepares replacements once the port that took them
// forwards (refill). The price is one port's worth of sockets, with their
// UMEMs pinned, while no port uses them. A port that finds the pool empty
// (ADDs faster than the refill) opens its own, as without the pool.
//
// A socket belongs to the network namespace it was made in and can bind
// only to devices there, so the goroutine makes them in the namespace of
// the thread that made the pool (the dataplane's). ringnetd runs in it
// whole; tests run dataplanes in other namespaces, and there the goroutine
// enters it while it prepares, or, without CAP_SYS_ADMIN, prepares none and
// leaves ports to open their own.
type sockPool struct {
	cfg   xsk.Config
	netns int              // the dataplane's network namespace, open
	ready chan *xsk.Socket // prepared sockets; cap is the pool's size
	kick  chan struct{}    // cap 1: refill what was taken
	done  chan struct{}
	wg    sync.WaitGroup
}

// newSockPool starts a pool of size sockets for cfg in the calling
// thread's network namespace, the dataplane's: AddPort's (ringnetd runs in
// one namespace; tests call AddPort on a thread locked in theirs).
func newSockPool(cfg xsk.Config, size int) *sockPool {
	p := &sockPool{cfg: cfg, netns: -1, ready: make(chan *xsk.Socket, size),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	if fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		p.netns = fd
	}
	p.wg.Add(1)
	go p.fill()
	return p
}

// fill prepares sockets until the pool is full, then waits for one to be
// taken. A failure (out of memory, say) stops it until the next take:
// ports then open their own sockets and report the error themselves.
func (p *sockPool) fill() {
	defer p.wg.Done()
	runtime.LockOSThread()
	for {
		switch p.top() {
		case stuck:
			return // the thread ends with the goroutine, locked
		case closed:
			runtime.UnlockOSThread()
			return
		}
		select {
		case <-p.kick:
		case <-p.done:
			runtime.UnlockOSThread()
			return
		}
	}
}

const (
	topped = iota // filled as far as it would go
	closed        // the pool was closed meanwhile
	stuck         // the thread is left in the dataplane's namespace
)

// top prepares sockets until the pool is full, in the pool's network
// namespace: if the locked thread is elsewhere it enters the namespace for
// the while, and leaves it again before returning, so that it never keeps
// a thread, possibly the process's main thread, in a namespace not its own.
func (p *sockPool) top() int {
	if p.netns < 0 {
		return topped
	}
	back := -1
	var want, have unix.Stat_t
	if unix.Fstat(p.netns, &want) != nil || unix.Stat("/proc/thread-self/ns/net", &have) != nil {
		return topped
	}
	if want.Dev != have.Dev || want.Ino != have.Ino {
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return topped
		}
		defer unix.Close(fd)
		if unix.Setns(p.netns, unix.CLONE_NEWNET) != nil {
			return topped // no CAP_SYS_ADMIN: ports open their own
		}
		back = fd
	}
	result := topped
	for len(p.ready) < cap(p.ready) {
		s, err := xsk.Prepare(p.cfg, nil)
		if err != nil {
			break
		}
		select {
		case p.ready <- s: // only fill sends, so there is room
			continue
		case <-p.done:
			s.Close()
			result = closed
		}
		break
	}
	if back >= 0 && unix.Setns(back, unix.CLONE_NEWNET) != nil {
		return stuck
	}
	return result
}

// get takes a prepared socket, or returns nil if none is ready. The pool
// refills only when told to (refill).
func (p *sockPool) get() *xsk.Socket {
	select {
	case s := <-p.ready:
		return s
	default:
		return nil
	}
}

// refill has the goroutine prepare what was taken. AddPort calls it once
// the port forwards, so that the work, which keeps a core busy for a few
// milliseconds, runs between ADDs rather than inside the next one.
func (p *sockPool) refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// spares is how many sockets are prepared and waiting.
func (p *sockPool) spares() int { return len(p.ready) }

// close stops the refill and closes what is waiting.
func (p *sockPool) close() {
	close(p.done)
	p.wg.Wait()
	if p.netns >= 0 {
		unix.Close(p.netns)
	}
	for {
		select {
		case s := <-p.ready:
			s.Close()
		default:
			return
		}
	}
}
