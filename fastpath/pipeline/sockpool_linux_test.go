package pipeline

import (
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/internal/netnstest"
)

// The pool fills to its size with sockets that bind to a device of the
// namespace it was made in (though its goroutine starts elsewhere),
// refills what was taken only when told to, and closes what waits when
// closed.
func TestSockPool(t *testing.T) {
	n := netnstest.New(t, "rnSP")
	netnstest.Run(t, n.Name, "ip", "link", "add", "sa", "numrxqueues", "3", "numtxqueues", "3", "type", "veth", "peer", "name", "sb")
	netnstest.Run(t, n.Name, "ip", "link", "set", "sa", "up")
	netnstest.Run(t, n.Name, "ip", "link", "set", "sb", "up")
	cfg := xsk.Config{NumFrames: 64, FrameSize: 2048}
	var p *sockPool
	n.Do(t, func() error { p = newSockPool(cfg, 2); return nil })
	defer func() {
		if p != nil {
			p.close()
		}
	}()
	full := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for p.spares() != want {
			if time.Now().After(deadline) {
				t.Fatalf("pool holds %d sockets after 5s, want %d", p.spares(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	full(2)
	var got []*xsk.Socket
	defer func() {
		for _, s := range got {
			s.Close()
		}
	}()
	for q := range 3 {
		s := p.get()
		if s == nil {
			p.refill()
			full(2)
			s = p.get()
		}
		got = append(got, s)
		// "sa" exists only in n: binding proves the socket was made there.
		n.Do(t, func() error { return s.Bind("sa", q) })
		if s.Ifname() != "sa" || s.Queue() != q {
			t.Errorf("socket bound to %s queue %d, want sa queue %d", s.Ifname(), s.Queue(), q)
		}
	}
	time.Sleep(20 * time.Millisecond) // a refill of two small sockets would be done
	if p.spares() != 1 {
		t.Fatalf("pool holds %d sockets, want the 1 left: it refilled without being told", p.spares())
	}
	p.refill()
	full(2)
	p.close()
	if p.spares() != 0 || p.get() != nil {
		t.Errorf("closed pool still holds %d sockets", p.spares())
	}
	p = nil
}
