package pipeline

import (
	"sync"

	"github.com/ringnet/ringnet/fastpath/xsk"
)

// umemPool keeps UMEMs mapped and faulted in ahead of the next pod port,
// one per worker: mapping a socket's UMEM (8 MiB by default) is most of
// what opening the socket costs, about 2.7 ms on a 2-core VM, and a pod's
// CNI ADD waits for its sockets. A goroutine maps replacements once the
// port that took them forwards (refill). The price is one port's worth of UMEM mapped while no port
// uses it. A port that finds the pool empty (ADDs faster than the refill)
// maps its own, as without the pool. The mapping faults the UMEM in a
// piece at a time (xsk.MapUMEM), so it never holds the process's mmap
// lock long against the mmaps of a socket being opened.
type umemPool struct {
	cfg   xsk.Config
	ready chan []byte   // mapped UMEMs; cap is the pool's size
	kick  chan struct{} // cap 1: refill what was taken
	done  chan struct{}
	wg    sync.WaitGroup
}

func newUMEMPool(cfg xsk.Config, size int) *umemPool {
	p := &umemPool{cfg: cfg, ready: make(chan []byte, size), kick: make(chan struct{}, 1), done: make(chan struct{})}
	p.wg.Add(1)
	go p.fill()
	return p
}

// fill maps UMEMs until the pool is full, then waits for one to be taken.
// A failed mapping (out of memory, say) stops it until the next take:
// sockets then map their own and report the error themselves.
func (p *umemPool) fill() {
	defer p.wg.Done()
	for {
		for len(p.ready) < cap(p.ready) {
			m, err := xsk.MapUMEM(p.cfg)
			if err != nil {
				break
			}
			select {
			case p.ready <- m: // only fill sends, so there is room
			case <-p.done:
				_ = xsk.UnmapUMEM(m)
				return
			}
		}
		select {
		case <-p.kick:
		case <-p.done:
			return
		}
	}
}

// get takes a mapped UMEM, or returns nil if none is ready. The pool
// refills only when told to (refill).
func (p *umemPool) get() []byte {
	select {
	case m := <-p.ready:
		return m
	default:
		return nil
	}
}

// refill has the goroutine map what was taken. AddPort calls it once the
// port forwards, so that the mapping, which keeps a core busy for a few
// milliseconds, runs between ADDs rather than inside the next one.
func (p *umemPool) refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// spares is how many UMEMs are mapped and waiting.
func (p *umemPool) spares() int { return len(p.ready) }

// close stops the refill and unmaps what is waiting.
func (p *umemPool) close() {
	close(p.done)
	p.wg.Wait()
	for {
		select {
		case m := <-p.ready:
			_ = xsk.UnmapUMEM(m)
		default:
			return
		}
	}
}
